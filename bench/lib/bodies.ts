import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { uuidv7 } from "uuidv7";
import { Channel, NotificationSpecSchema, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import { CreateRequestSchema, GetRequestSchema } from "../../gen/herald/v1/notification_service_pb.js";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";

// The messages benchmarks send, built from the generated types so they are what a real client
// would put on the wire.

/** A typical e-mail: inline subject and text, no template. */
export function sampleSpec(user = "user-42"): NotificationSpec {
  return create(NotificationSpecSchema, {
    channel: Channel.EMAIL,
    recipient: { userId: user, address: { case: "email", value: `${user}@example.com` } },
    body: { case: "content", value: { subject: "Your receipt", text: "Thanks for your order. It ships tomorrow." } },
  });
}

/** A CreateRequest without idempotency key: every copy creates a new notification. */
export function createRequestBytes(): Uint8Array {
  return toBinary(CreateRequestSchema, create(CreateRequestSchema, { notification: sampleSpec() }));
}

export function getRequestBytes(): Uint8Array {
  return toBinary(GetRequestSchema, create(GetRequestSchema, { id: uuidv7() }));
}

/** What the relay publishes to herald.email for one notification (the Kafka record value). */
export function dispatchBytes(): Uint8Array {
  return toBinary(
    DispatchSchema,
    create(DispatchSchema, {
      notificationId: uuidv7(),
      tenant: "bench",
      notification: sampleSpec(),
      attempt: 1,
      createTime: timestampNow(),
      correlationId: uuidv7(),
    }),
  );
}

export function specBytes(): Buffer {
  return Buffer.from(toBinary(NotificationSpecSchema, sampleSpec()));
}
