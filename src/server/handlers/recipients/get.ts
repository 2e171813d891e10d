import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { GetRecipientRequest, GetRecipientResponse } from "../../../../gen/herald/v1/recipient_pb.js";
import { echo, validateUserId } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { getRecipient } from "../../../store/recipients.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";
import { toProfileMessage } from "./message.js";

/** GetRecipient: NOT_FOUND when the tenant has no such profile (another tenant's reads the same). */
export function getRecipientHandler(deps: RecipientHandlerDeps) {
  return async (req: GetRecipientRequest, ctx: HandlerContext): Promise<Pick<GetRecipientResponse, "recipient">> => {
    const call = callInfo(ctx);
    validateUserId(req.userId, "user_id");
    const found = await withStoreErrors(() => getRecipient(deps.pool, call.tenant, req.userId));
    if (!found) throw new ConnectError(`no recipient ${echo(req.userId)}`, Code.NotFound);
    return { recipient: toProfileMessage(found) };
  };
}
