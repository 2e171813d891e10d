import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { CancelRequest, CancelResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import { Status } from "../../../gen/herald/v1/notification_pb.js";
import type { NotificationStore } from "../../store/notifications.js";
import { cancelable } from "../../domain/status.js";
import { validateId } from "../../domain/validate.js";
import { callInfo } from "../call-info.js";
import { type Clock } from "../../clock.js";

const cancelableNames = cancelable.map((s) => Status[s]).join(", ");

/** Cancel: stops a notification that has not been sent; too late is FAILED_PRECONDITION. */
export function cancelHandler(deps: { store: Pick<NotificationStore, "cancel">; clock: Clock }) {
  return async (req: CancelRequest, ctx: HandlerContext): Promise<Pick<CancelResponse, "notification">> => {
    const call = callInfo(ctx);
    validateId(req.id);
    const result = await deps.store.cancel(call.tenant, req.id, { now: new Date(deps.clock.now()), correlationId: call.requestId });
    switch (result.kind) {
      case "canceled":
        call.log.info({ notificationId: req.id }, "notification canceled");
        return { notification: result.notification };
      case "not_found":
        throw new ConnectError(`notification ${req.id} not found`, Code.NotFound);
      case "too_late":
        throw new ConnectError(
          `notification ${req.id} is ${Status[result.status]}; only ${cancelableNames} can be canceled`,
          Code.FailedPrecondition,
        );
    }
  };
}
