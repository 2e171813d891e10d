import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { EraseRecipientRequest, EraseRecipientResponse } from "../../../../gen/herald/v1/recipient_pb.js";
import { validateUserId } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";

/**
 * EraseRecipient: forgets the person (store/erasure.ts says what goes and what stays) and answers
 * with what was erased. ABORTED while one of their notifications is being sent: the caller tries
 * again once it ends; what earlier batches erased stays erased.
 */
export function eraseRecipientHandler(deps: RecipientHandlerDeps) {
  return async (req: EraseRecipientRequest, ctx: HandlerContext): Promise<Omit<EraseRecipientResponse, "$typeName">> => {
    const call = callInfo(ctx);
    validateUserId(req.userId, "user_id");
    const outcome = await withStoreErrors(() =>
      deps.eraseRecipient({ tenant: call.tenant, userId: req.userId, actor: { keyId: call.keyId, requestId: call.requestId }, now: new Date() }),
    );
    if (outcome.kind === "sending") {
      throw new ConnectError(`${outcome.count} of the recipient's notifications are being sent; erase again once the send ends`, Code.Aborted);
    }
    const c = outcome.counts;
    // Logged without the user id: the log must not keep what the erasure removed.
    call.log.info({ auditId: outcome.auditId, ...c }, "recipient erased");
    return {
      notificationsErased: c.notificationsErased,
      notificationsCanceled: c.notificationsCanceled,
      profileDeleted: c.profileDeleted,
      preferencesDeleted: c.preferencesDeleted,
      suppressionsDeleted: c.suppressionsDeleted,
      deadLettersDeleted: c.deadLettersDeleted,
      receiptsDeleted: c.receiptsDeleted,
      outboxRecordsDeleted: c.outboxRecordsDeleted,
      notifyRequestsDeleted: c.notifyRequestsDeleted,
      auditId: outcome.auditId,
    };
  };
}
