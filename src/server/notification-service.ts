import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import type { NotificationStore } from "../store/notifications.js";
import type { TemplateStore } from "../store/templates.js";
import { createHandler } from "./handlers/create.js";
import { scheduleHandler } from "./handlers/schedule.js";
import { getHandler } from "./handlers/get.js";
import { cancelHandler } from "./handlers/cancel.js";
import { mount, type MountedService } from "./services.js";
import type { AcceptDeps } from "./handlers/accept.js";
import { createTemplatePin } from "./handlers/template-ref.js";
import { watchStatusHandler, type WatchStatusDeps } from "./handlers/watch-status.js";
import { notifyHandler, type NotifyDeps } from "./handlers/notify.js";
import { createBatchHandler } from "./handlers/create-batch.js";
import { batchCost, metered, notifyCost } from "./quota/metered.js";
import type { TenantQuotas } from "./quota/tenant-quotas.js";

export interface NotificationServiceDeps extends Omit<AcceptDeps, "store"> {
  store: NotificationStore;
  /** Where a TemplateRef is checked and its version pinned at accept time. */
  templates: Pick<TemplateStore, "get">;
  watch: Omit<WatchStatusDeps, "clock">;
  /** Notify's own: the database it reads recipients from and stores fan-outs in, its key window and metrics. */
  notify: Pick<NotifyDeps, "pool" | "idempotencyTtlMs" | "metrics">;
  /** Per-tenant accept quotas, charged before Create, Schedule, Notify and CreateBatch; none: no quotas. */
  quotas?: TenantQuotas;
}

/** herald.v1.NotificationService, wired from one handler per RPC. */
export function notificationService(deps: NotificationServiceDeps): MountedService {
  const accepting = { ...deps, pinTemplate: createTemplatePin({ templates: deps.templates }) };
  const one = () => 1;
  return mount(NotificationService, {
    create: metered(deps.quotas, one, createHandler(accepting)),
    schedule: metered(deps.quotas, one, scheduleHandler(accepting)),
    get: getHandler(deps),
    cancel: cancelHandler(deps),
    watchStatus: watchStatusHandler({ ...deps.watch, clock: deps.clock }),
    notify: metered(
      deps.quotas,
      notifyCost,
      notifyHandler({ ...deps.notify, clock: deps.clock, newId: deps.newId, maxAttempts: deps.maxAttempts, pinTemplate: accepting.pinTemplate }),
    ),
    createBatch: metered(deps.quotas, (req) => batchCost(req.items), createBatchHandler({ ...deps, ...deps.notify })),
  });
}
