import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type pg from "pg";
import { NotificationSpecSchema, Status, type Channel, type Notification } from "../../../gen/herald/v1/notification_pb.js";
import {
  NotifyResponseSchema,
  SkippedChannelSchema,
  type NotifyRequest,
  type NotifyResponse,
} from "../../../gen/herald/v1/notification_service_pb.js";
import { notifyTargets, quietHold, suppressedSkip, targetSpec, withRecipientData, type Skip } from "../../domain/fanout.js";
import { validateNotifyRequest, type ChannelPlan } from "../../domain/notify-request.js";
import { notifyRequestHash } from "../../domain/request-hash.js";
import type { Clock } from "../../clock.js";
import { channelName } from "../../kafka/topics.js";
import type { AcceptMetrics } from "../../metrics/api.js";
import { withStoreErrors } from "../../store/errors.js";
import { readNotifyContext } from "../../store/notify-reads.js";
import { replayNotify, storeNotify, type NotifyInput, type NotifyOutcome } from "../../store/notify.js";
import { findSuppressions } from "../../store/suppressions.js";
import { traceAccept } from "../../tracing/spans.js";
import { callInfo } from "../call-info.js";
import type { PinTemplate } from "./template-ref.js";
import type { Asker } from "./prepare.js";

export interface NotifyDeps {
  pool: pg.Pool;
  clock: Clock;
  /** New ids (UUIDv7): the notify_id and each notification's. */
  newId: () => string;
  maxAttempts: (channel: Channel) => number;
  pinTemplate: PinTemplate;
  /** How long an idempotency key holds, as for Create. @defaultValue 0, for ever */
  idempotencyTtlMs?: number;
  /** herald_accepted_total{method="notify"}; none: not recorded. */
  metrics?: Pick<AcceptMetrics, "accepted">;
}

/**
 * Notify: validate, read the recipient (profile, preferences, the category's setting), decide the
 * channels, check the addresses against suppressions, and store the fan-out in one transaction.
 */
export function notifyHandler(deps: NotifyDeps) {
  const ttlMs = deps.idempotencyTtlMs ?? 0;
  return async (req: NotifyRequest, ctx: HandlerContext): Promise<NotifyResponse> => {
    const call = callInfo(ctx);
    const prepared = await prepareNotify(deps, req, { tenant: call.tenant, requestId: call.requestId, now: new Date(deps.clock.now()) });
    if ("replay" in prepared) return notifyAnswer(prepared.replay);
    const outcome = await traceAccept(
      "Notify",
      () => ctx.requestHeader.get("traceparent"),
      () => ({ "herald.notify_id": prepared.id }),
      (traceparent) => storeNotify(deps.pool, withTraceparent(prepared, traceparent), ttlMs),
      (o) => ({ "herald.notifications": o.kind === "key_conflict" ? 0 : o.notifications.length }),
    );
    if (outcome.kind === "created") countNotified(deps, outcome.notifications);
    return notifyAnswer(outcome);
  };
}

/** The fan-out with the accept span's traceparent on every notification (tracing off: as it is). */
export function withTraceparent(input: NotifyInput, traceparent: string | undefined): NotifyInput {
  return traceparent ? { ...input, notifications: input.notifications.map((n) => ({ ...n, traceparent })) } : input;
}

/** herald_accepted_total{method="notify"} for each notification a fan-out created. */
export function countNotified(deps: Pick<NotifyDeps, "metrics">, made: readonly Notification[]): void {
  if (deps.metrics) for (const n of made) deps.metrics.accepted(channelName(n.channel), "notify").inc();
}

/**
 * A Notify request made ready to store, or the answer a repeat of a stored one gets (read before
 * anything else: the profile may be gone since). NOT_FOUND when the tenant has no such recipient.
 */
export async function prepareNotify(
  deps: Omit<NotifyDeps, "clock" | "metrics">,
  req: NotifyRequest,
  by: Asker,
): Promise<NotifyInput | { replay: NotifyOutcome }> {
  const plans = validateNotifyRequest(req);
  const hash = req.idempotencyKey === "" ? null : notifyRequestHash(req);
  if (hash) {
    const replay = await withStoreErrors(() =>
      replayNotify(deps.pool, { tenant: by.tenant, key: req.idempotencyKey, requestHash: hash, now: by.now, ttlMs: deps.idempotencyTtlMs ?? 0 }),
    );
    if (replay) return { replay };
  }
  const context = await withStoreErrors(() => readNotifyContext(deps.pool, by.tenant, req.userId, req.category));
  if (!context) {
    throw new ConnectError(`user_id: no recipient ${JSON.stringify(req.userId.slice(0, 40))} in this tenant: store one with PutRecipient first`, Code.NotFound);
  }
  const { profile, preferences, setting } = context;
  const bodies = await pinBodies(deps.pinTemplate, by.tenant, plans, profile);
  const { targets, skipped } = notifyTargets(bodies, profile, { category: req.category, preferences, setting });
  const suppressions = await withStoreErrors(() =>
    findSuppressions(deps.pool, targets.map((t) => ({ tenant: by.tenant, channel: t.channel, address: t.value }))),
  );
  const held = quietHold(req.priority, profile, preferences, by.now);
  const notifyId = deps.newId();
  const sending = targets.filter((t, i) => {
    const s = suppressions[i];
    if (s) skipped.push(suppressedSkip(t, s.reason));
    return !s;
  });
  return {
    id: notifyId,
    tenant: by.tenant,
    userId: req.userId,
    idempotencyKey: req.idempotencyKey,
    requestHash: hash,
    skipped: skipped.sort((a, b) => a.channel - b.channel),
    now: by.now,
    notifications: sending.map((t) => ({
      tenant: by.tenant,
      id: deps.newId(),
      spec: targetSpec(t, { ...req, locale: profile.locale }),
      idempotencyKey: "",
      requestHash: null,
      correlationId: by.requestId,
      status: held ? Status.SCHEDULED : Status.QUEUED,
      deliverAt: held?.until ?? by.now,
      maxAttempts: deps.maxAttempts(t.channel),
      now: by.now,
      notifyId,
      ...(held ? { detail: held.detail } : {}),
    })),
  };
}

/**
 * Each considered channel's body as stored: a template's variables with the profile's data, its
 * version pinned and checked against the variant the profile's locale chooses (every considered channel, whether or not the recipient has an
 * address for it, so a request's errors do not depend on whose profile it names).
 */
async function pinBodies(
  pin: PinTemplate,
  tenant: string,
  plans: readonly ChannelPlan[],
  profile: { data: Record<string, string>; locale: string },
): Promise<ChannelPlan[]> {
  return Promise.all(
    plans.map(async (plan) => {
      const body = withRecipientData(plan.body, profile.data);
      if (body.case !== "template") return plan;
      // With the profile's locale: the variables checked are those of the variant it will render.
      const pinned = await pin(tenant, create(NotificationSpecSchema, { channel: plan.channel, body, locale: profile.locale }), plan.path);
      return { ...plan, body: pinned.body };
    }),
  );
}

/** The RPC's answer to a stored or replayed fan-out; ALREADY_EXISTS for a key used by another request. */
export function notifyAnswer(outcome: NotifyOutcome): NotifyResponse {
  if (outcome.kind === "key_conflict") {
    throw new ConnectError("idempotency_key: already used for a different Notify request; use a new key for a new event", Code.AlreadyExists);
  }
  return create(NotifyResponseSchema, {
    notifyId: outcome.notifyId,
    notifications: outcome.notifications,
    skipped: outcome.skipped.map((s: Skip) => create(SkippedChannelSchema, s)),
  });
}
