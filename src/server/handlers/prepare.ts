import { Status, type Notification } from "../../../gen/herald/v1/notification_pb.js";
import type { CreateRequest, ScheduleRequest } from "../../../gen/herald/v1/notification_service_pb.js";
import { requestHash } from "../../domain/request-hash.js";
import { validateIdempotencyKey, validateSpec } from "../../domain/validate.js";
import { resolveDeliverAt } from "../../domain/when.js";
import type { AcceptInput } from "../../store/accept-statement.js";
import type { AcceptDeps } from "./accept.js";
import type { PinTemplate } from "./template-ref.js";

// A Create or Schedule request turned into what the store accepts: checked (INVALID_ARGUMENT
// naming the field), hashed, its template pinned, its time resolved. Shared by the
// single RPCs and CreateBatch, so an item of a batch is held to exactly the rules of the call.

/** What accept needs of a request, before the store gives it an id and its attempts. */
export type Prepared = Omit<AcceptInput, "id" | "maxAttempts" | "traceparent">;

export interface PrepareDeps extends Pick<AcceptDeps, "egress" | "horizonMs" | "store"> {
  pinTemplate: PinTemplate;
}

/** Who asks and when: the caller's tenant and request id, the accept time. */
export interface Asker {
  tenant: string;
  requestId: string;
  now: Date;
}

export async function prepareCreate(deps: PrepareDeps, req: CreateRequest, by: Asker): Promise<Prepared> {
  // The spec to store: as given, its locale in canonical form.
  const spec = validateSpec(req.notification, "notification", { egress: deps.egress });
  validateIdempotencyKey(req.idempotencyKey, "idempotency_key");
  // The hash is of what the caller sent (its locale canonical), so a retry with version 0
  // after a new PutTemplate is still the same request; the pinned spec is what is stored.
  // Without a key nothing is ever compared with it: no hash.
  const hash = req.idempotencyKey === "" ? null : requestHash({ method: "create", spec });
  const pinned = await deps.pinTemplate(by.tenant, spec, "notification");
  return {
    tenant: by.tenant,
    spec: pinned,
    idempotencyKey: req.idempotencyKey,
    requestHash: hash,
    correlationId: by.requestId,
    status: Status.QUEUED,
    deliverAt: by.now,
    now: by.now,
  };
}

/**
 * A Schedule to accept, or the notification a retry of a stored one is answered with when its
 * time has passed since (the key says it was accepted: it is not refused for a time that was
 * valid when it was stored).
 */
export async function prepareSchedule(deps: PrepareDeps, req: ScheduleRequest, by: Asker): Promise<Prepared | { replay: Notification }> {
  const spec = validateSpec(req.notification, "notification", { egress: deps.egress });
  validateIdempotencyKey(req.idempotencyKey, "idempotency_key");
  const hash = req.idempotencyKey === "" ? null : requestHash({ method: "schedule", spec, when: req.when });
  let when: ReturnType<typeof resolveDeliverAt>;
  try {
    when = resolveDeliverAt(req.when, { now: by.now, horizonMs: deps.horizonMs });
  } catch (err) {
    const stored = hash && (await deps.store.findByIdempotencyKey(by.tenant, req.idempotencyKey, hash, by.now));
    if (stored) return { replay: stored };
    throw err;
  }
  const pinned = await deps.pinTemplate(by.tenant, spec, "notification");
  return {
    tenant: by.tenant,
    spec: pinned,
    idempotencyKey: req.idempotencyKey,
    requestHash: hash,
    correlationId: by.requestId,
    status: Status.SCHEDULED,
    deliverAt: when.deliverAt,
    ...(when.localTime ? { localTime: when.localTime } : {}),
    now: by.now,
  };
}
