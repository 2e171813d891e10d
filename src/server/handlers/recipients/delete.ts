import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { DeleteRecipientRequest, DeleteRecipientResponse } from "../../../../gen/herald/v1/recipient_pb.js";
import { echo, validateUserId } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { deleteRecipient } from "../../../store/recipients.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";
import { toProfileMessage } from "./message.js";

/** DeleteRecipient: removes the profile and returns it as it was; NOT_FOUND when there was none. */
export function deleteRecipientHandler(deps: RecipientHandlerDeps) {
  return async (req: DeleteRecipientRequest, ctx: HandlerContext): Promise<Pick<DeleteRecipientResponse, "recipient">> => {
    const call = callInfo(ctx);
    validateUserId(req.userId, "user_id");
    const removed = await withStoreErrors(() => deleteRecipient(deps.pool, call.tenant, req.userId));
    if (!removed) throw new ConnectError(`no recipient ${echo(req.userId)}`, Code.NotFound);
    return { recipient: toProfileMessage(removed) };
  };
}
