import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { Channel } from "../../../../gen/herald/v1/notification_pb.js";
import type { RemoveSuppressionRequest, RemoveSuppressionResponse } from "../../../../gen/herald/v1/suppression_pb.js";
import { echo, validateChannelAddress } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { removeSuppression } from "../../../store/suppressions.js";
import { callInfo } from "../../call-info.js";
import type { SuppressionHandlerDeps } from "./deps.js";
import { toSuppressionMessage } from "./message.js";

/**
 * RemoveSuppression: sends to the address go through again. NOT_FOUND when the tenant has no such
 * suppression (another tenant's is not theirs to see, so it reads the same).
 */
export function removeSuppressionHandler(deps: SuppressionHandlerDeps) {
  return async (req: RemoveSuppressionRequest, ctx: HandlerContext): Promise<Pick<RemoveSuppressionResponse, "suppression">> => {
    const call = callInfo(ctx);
    validateChannelAddress(req.channel, req.address, { channel: "channel", address: "address" });
    const removed = await withStoreErrors(() => removeSuppression(deps.pool, call.tenant, req.channel, req.address));
    if (!removed) {
      throw new ConnectError(`no suppression of ${echo(req.address)} on CHANNEL_${Channel[req.channel]}`, Code.NotFound);
    }
    return { suppression: toSuppressionMessage(removed) };
  };
}
