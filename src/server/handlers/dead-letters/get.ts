import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { GetDeadLetterRequest, GetDeadLetterResponse } from "../../../../gen/herald/v1/dead_letter_pb.js";
import { validateId } from "../../../domain/validate.js";
import type { DeadLetterStore } from "../../../store/dead-letters.js";
import { callInfo } from "../../call-info.js";

/**
 * GetDeadLetter: one open dead letter of the caller's tenant. A notification
 * that is not dead (never was, or was redriven) is NOT_FOUND, like another
 * tenant's: there is no dead letter to return.
 */
export function getDeadLetterHandler(deps: { store: Pick<DeadLetterStore, "get"> }) {
  return async (req: GetDeadLetterRequest, ctx: HandlerContext): Promise<Pick<GetDeadLetterResponse, "deadLetter">> => {
    const call = callInfo(ctx);
    validateId(req.notificationId, "notification_id");
    const deadLetter = await deps.store.get(call.tenant, req.notificationId);
    if (!deadLetter) throw new ConnectError(`no dead letter for notification ${req.notificationId}`, Code.NotFound);
    return { deadLetter };
  };
}
