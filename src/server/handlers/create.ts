import type { HandlerContext } from "@connectrpc/connect";
import type { CreateRequest, CreateResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import { Status } from "../../../gen/herald/v1/notification_pb.js";
import { validateIdempotencyKey, validateSpec } from "../../domain/validate.js";
import { requestHash } from "../../domain/request-hash.js";
import { callInfo } from "../call.js";
import { accept, type AcceptDeps } from "./accept.js";

/** Create: validate, store with status QUEUED (the outbox carries it to Kafka), answer. */
export function createHandler(deps: AcceptDeps) {
  return async (req: CreateRequest, ctx: HandlerContext): Promise<Pick<CreateResponse, "notification">> => {
    const call = callInfo(ctx);
    validateSpec(req.notification);
    validateIdempotencyKey(req.idempotencyKey);
    const spec = req.notification!;
    const now = deps.clock();
    const notification = await accept(deps, {
      tenant: call.tenant,
      spec,
      idempotencyKey: req.idempotencyKey,
      requestHash: requestHash({ method: "create", spec }),
      correlationId: call.requestId,
      status: Status.QUEUED,
      deliverAt: now,
      now,
    });
    call.log.debug({ notificationId: notification.id }, "notification accepted");
    return { notification };
  };
}
