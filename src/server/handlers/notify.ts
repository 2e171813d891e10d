import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type pg from "pg";
import { NotificationSpecSchema, Status, type Channel } from "../../../gen/herald/v1/notification_pb.js";
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
import { replayNotify, storeNotify, type NotifyOutcome } from "../../store/notify.js";
import { findSuppressions } from "../../store/suppressions.js";
import { callInfo } from "../call-info.js";
import type { PinTemplate } from "./template-ref.js";

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
    const plans = validateNotifyRequest(req);
    const hash = req.idempotencyKey === "" ? null : notifyRequestHash(req);
    const now = new Date(deps.clock.now());
    // A repeat is answered from what was stored before anything is read: the profile may be gone since.
    if (hash) {
      const replay = await withStoreErrors(() => replayNotify(deps.pool, { tenant: call.tenant, key: req.idempotencyKey, requestHash: hash, now, ttlMs }));
      if (replay) return answer(replay);
    }

    const context = await withStoreErrors(() => readNotifyContext(deps.pool, call.tenant, req.userId, req.category));
    if (!context) {
      throw new ConnectError(`user_id: no recipient ${JSON.stringify(req.userId.slice(0, 40))} in this tenant: store one with PutRecipient first`, Code.NotFound);
    }
    const { profile, preferences, setting } = context;
    const bodies = await pinBodies(deps.pinTemplate, call.tenant, plans, profile);
    const { targets, skipped } = notifyTargets(bodies, profile, { category: req.category, preferences, setting });
    const suppressions = await withStoreErrors(() =>
      findSuppressions(deps.pool, targets.map((t) => ({ tenant: call.tenant, channel: t.channel, address: t.value }))),
    );
    const held = quietHold(req.priority, profile, preferences, now);
    const notifyId = deps.newId();
    const sending = targets.filter((t, i) => {
      const s = suppressions[i];
      if (s) skipped.push(suppressedSkip(t, s.reason));
      return !s;
    });
    const outcome = await storeNotify(deps.pool, {
      id: notifyId,
      tenant: call.tenant,
      userId: req.userId,
      idempotencyKey: req.idempotencyKey,
      requestHash: hash,
      skipped: skipped.sort((a, b) => a.channel - b.channel),
      now,
      notifications: sending.map((t) => {
        const spec = targetSpec(t, { ...req, locale: profile.locale });
        return {
          tenant: call.tenant,
          id: deps.newId(),
          spec,
          idempotencyKey: "",
          requestHash: null,
          correlationId: call.requestId,
          status: held ? Status.SCHEDULED : Status.QUEUED,
          deliverAt: held?.until ?? now,
          maxAttempts: deps.maxAttempts(t.channel),
          now,
          notifyId,
          ...(held ? { detail: held.detail } : {}),
        };
      }),
    }, ttlMs);
    if (outcome.kind === "created" && deps.metrics) {
      for (const n of outcome.notifications) deps.metrics.accepted(channelName(n.channel), "notify").inc();
    }
    return answer(outcome);
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

function answer(outcome: NotifyOutcome): NotifyResponse {
  if (outcome.kind === "key_conflict") {
    throw new ConnectError("idempotency_key: already used for a different Notify request; use a new key for a new event", Code.AlreadyExists);
  }
  return create(NotifyResponseSchema, {
    notifyId: outcome.notifyId,
    notifications: outcome.notifications,
    skipped: outcome.skipped.map((s: Skip) => create(SkippedChannelSchema, s)),
  });
}
