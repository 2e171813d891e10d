import type { HandlerContext } from "@connectrpc/connect";
import type { CreateRequest, CreateResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import { Status } from "../../../gen/herald/v1/notification_pb.js";
import { validateIdempotencyKey, validateSpec } from "../../domain/validate.js";
import { requestHash } from "../../domain/request-hash.js";
import { callInfo } from "../call-info.js";
import { accept, type AcceptDeps } from "./accept.js";
import type { PinTemplate } from "./template-ref.js";

/** Create: validate, store with status QUEUED (the outbox carries it to Kafka), answer. */
export function createHandler(deps: AcceptDeps & { pinTemplate: PinTemplate }) {
  return async (req: CreateRequest, ctx: HandlerContext): Promise<Pick<CreateResponse, "notification">> => {
    const call = callInfo(ctx);
    // The spec to store: as given, its locale in canonical form.
    const spec = validateSpec(req.notification, "notification", { egress: deps.egress });
    validateIdempotencyKey(req.idempotencyKey);
    // The hash is of what the caller sent (its locale canonical), so a retry with version 0
    // after a new PutTemplate is still the same request; the pinned spec is what is stored.
    // Without a key nothing is ever compared with it: no hash.
    const hash = req.idempotencyKey === "" ? null : requestHash({ method: "create", spec });
    const pinned = await deps.pinTemplate(call.tenant, spec);
    const now = new Date(deps.clock.now());
    const notification = await accept(deps, {
      tenant: call.tenant,
      spec: pinned,
      idempotencyKey: req.idempotencyKey,
      requestHash: hash,
      correlationId: call.requestId,
      status: Status.QUEUED,
      deliverAt: now,
      now,
    }, ctx);
    return { notification };
  };
}
