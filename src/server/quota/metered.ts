import type { HandlerContext } from "@connectrpc/connect";
import type { BatchItem, NotifyRequest } from "../../../gen/herald/v1/notification_service_pb.js";
import { NOTIFY_CHANNELS } from "../../domain/notify-request.js";
import { callInfo } from "../call-info.js";
import type { TenantQuotas } from "./tenant-quotas.js";

// The one place the accept RPCs meet the tenant quotas: each handler is wrapped once where the
// service is wired (notification-service.ts), after the edge has authenticated the call (the
// tenant is known) and before the handler validates or reads anything, so a refused call costs
// one Redis round trip. What a call costs is counted from the request as it came, invalid or not.

/** Notify's cost: the channels it considers (an invalid request costs what it names, at least 1). */
export function notifyCost(req: NotifyRequest): number {
  if (req.channels.length > 0) return new Set(req.channels).size;
  if (req.body.case !== undefined) return NOTIFY_CHANNELS.length;
  return Math.max(1, new Set(req.channelBodies.map((b) => b.channel)).size);
}

/** A CreateBatch's cost: the sum of its items' (an empty item counts 1, as it is answered on its own). */
export function batchCost(items: readonly BatchItem[]): number {
  let cost = 0;
  for (const item of items) cost += item.item.case === "notify" ? notifyCost(item.item.value) : 1;
  return cost;
}

/** `handler`, charging `cost(req)` tokens of the caller's tenant first; `quotas` undefined: unchanged. */
export function metered<Req, Res>(
  quotas: TenantQuotas | undefined,
  cost: (req: Req) => number,
  handler: (req: Req, ctx: HandlerContext) => Promise<Res>,
): (req: Req, ctx: HandlerContext) => Promise<Res> {
  if (!quotas) return handler;
  return async (req, ctx) => {
    await quotas.charge(callInfo(ctx).tenant, cost(req));
    return handler(req, ctx);
  };
}
