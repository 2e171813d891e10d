import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { AddSuppressionRequest, AddSuppressionResponse } from "../../../../gen/herald/v1/suppression_pb.js";
import { controlChars, invalidArgument, longerThan, validateChannelAddress } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { addSuppression, findSuppression } from "../../../store/suppressions.js";
import { callInfo } from "../../call-info.js";
import type { SuppressionHandlerDeps } from "./deps.js";
import { toSuppressionMessage } from "./message.js";

/** The longest note AddSuppression keeps, in characters (code points). */
export const suppressionNoteMaxChars = 1024;

/**
 * AddSuppression: an operator's entry (reason manual, the note as its detail). An address already
 * suppressed keeps its first entry (a bounce's code, an earlier note) and the call returns it with
 * created false, so a retried call is harmless.
 */
export function addSuppressionHandler(deps: SuppressionHandlerDeps) {
  return async (req: AddSuppressionRequest, ctx: HandlerContext): Promise<Pick<AddSuppressionResponse, "suppression" | "created">> => {
    const call = callInfo(ctx);
    validateChannelAddress(req.channel, req.address, { channel: "channel", address: "address" });
    if (longerThan(req.note, suppressionNoteMaxChars)) throw invalidArgument("note", `must be at most ${suppressionNoteMaxChars} characters`);
    // NUL cannot be stored; the other control characters would garble the CLI's table and logs.
    if (controlChars.test(req.note.replace(/[\t\n]/g, ""))) throw invalidArgument("note", "must not contain control characters other than tab and newline");
    const created = await withStoreErrors(() =>
      addSuppression(deps.pool, { tenant: call.tenant, channel: req.channel, address: req.address, reason: "manual", detail: req.note }),
    );
    const suppression = await withStoreErrors(() => findSuppression(deps.pool, call.tenant, req.channel, req.address));
    // Removed by another call between the two statements: say so rather than return nothing.
    if (!suppression) throw new ConnectError("the suppression was removed while it was being added; try again", Code.Aborted);
    return { suppression: toSuppressionMessage(suppression), created };
  };
}
