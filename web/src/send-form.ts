import type { MessageInitShape } from "@bufbuild/protobuf";
import { Channel, type RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import type { CreateRequestSchema } from "../../gen/herald/v1/notification_service_pb.js";

export type CreateInit = MessageInitShape<typeof CreateRequestSchema>;
type Address = NonNullable<MessageInitShape<typeof RecipientSchema>["address"]>;

/** What the form holds, as typed by the user. */
export interface SendFields {
  channel: "email" | "sms" | "push" | "webhook";
  to: string;
  userId: string;
  subject: string;
  text: string;
}

const channels = {
  email: { channel: Channel.EMAIL, address: (value: string): Address => ({ case: "email", value }) },
  sms: { channel: Channel.SMS, address: (value: string): Address => ({ case: "phone", value }) },
  push: { channel: Channel.PUSH, address: (value: string): Address => ({ case: "deviceToken", value }) },
  webhook: { channel: Channel.WEBHOOK, address: (value: string): Address => ({ case: "webhookUrl", value }) },
} as const;

export const isChannel = (s: string): s is SendFields["channel"] => Object.hasOwn(channels, s);

/**
 * The Create request for the form. Validation is the server's: its
 * INVALID_ARGUMENT names the field and the rule, and the page shows it as is.
 */
export function createRequest(fields: SendFields, idempotencyKey: string): CreateInit {
  const { channel, address } = channels[fields.channel];
  return {
    notification: {
      channel,
      recipient: { userId: fields.userId, address: address(fields.to) },
      body: { case: "content", value: { subject: fields.subject, text: fields.text } },
    },
    idempotencyKey,
  };
}
