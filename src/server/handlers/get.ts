import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { GetRequest, GetResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import type { NotificationStore } from "../../store/notifications.js";
import { validateId } from "../../domain/validate.js";
import { callInfo } from "../call-info.js";

/** Get: one notification of the caller's tenant with its history; another tenant's id is NOT_FOUND. */
export function getHandler(deps: { store: Pick<NotificationStore, "get"> }) {
  return async (req: GetRequest, ctx: HandlerContext): Promise<Pick<GetResponse, "notification" | "history">> => {
    const call = callInfo(ctx);
    validateId(req.id);
    const found = await deps.store.get(call.tenant, req.id);
    if (!found) throw new ConnectError(`notification ${req.id} not found`, Code.NotFound);
    return found;
  };
}
