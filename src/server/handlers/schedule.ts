import type { HandlerContext } from "@connectrpc/connect";
import type { ScheduleRequest, ScheduleResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import { Status } from "../../../gen/herald/v1/notification_pb.js";
import { validateIdempotencyKey, validateSpec } from "../../domain/validate.js";
import { resolveDeliverAt } from "../../domain/when.js";
import { requestHash } from "../../domain/request-hash.js";
import { callInfo } from "../call-info.js";
import { accept, type AcceptDeps } from "./accept.js";
import type { PinTemplate } from "./template-ref.js";

/** Schedule: validate, resolve the delivery time, store with status SCHEDULED for the scheduler to release. */
export function scheduleHandler(deps: AcceptDeps & { pinTemplate: PinTemplate }) {
  return async (req: ScheduleRequest, ctx: HandlerContext): Promise<Pick<ScheduleResponse, "notification">> => {
    const call = callInfo(ctx);
    // The spec to store: as given, its locale in canonical form.
    const spec = validateSpec(req.notification, "notification", { egress: deps.egress });
    validateIdempotencyKey(req.idempotencyKey);
    // The hash is of what the caller sent (its locale canonical), so a retry with version 0
    // after a new PutTemplate is still the same request; the pinned spec is what is stored.
    // Without a key nothing is ever compared with it: no hash.
    const hash = req.idempotencyKey === "" ? null : requestHash({ method: "schedule", spec, when: req.when });
    const now = new Date(deps.clock.now());
    let when: ReturnType<typeof resolveDeliverAt>;
    try {
      when = resolveDeliverAt(req.when, { now, horizonMs: deps.horizonMs });
    } catch (err) {
      // A retry of a Schedule that was stored, sent again after its time has come (the first
      // answer was lost): the key says it was accepted, so it is answered as a retry is, with
      // the stored notification, not refused for a time that was valid when it was stored.
      const stored = hash && (await deps.store.findByIdempotencyKey(call.tenant, req.idempotencyKey, hash, now));
      if (stored) return { notification: stored };
      throw err;
    }
    const { deliverAt, localTime } = when;
    const pinned = await deps.pinTemplate(call.tenant, spec);
    const notification = await accept(deps, {
      tenant: call.tenant,
      spec: pinned,
      idempotencyKey: req.idempotencyKey,
      requestHash: hash,
      correlationId: call.requestId,
      status: Status.SCHEDULED,
      deliverAt,
      localTime,
      now,
    }, ctx);
    return { notification };
  };
}
