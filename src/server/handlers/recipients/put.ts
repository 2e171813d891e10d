import type { HandlerContext } from "@connectrpc/connect";
import type { PutRecipientRequest, PutRecipientResponse } from "../../../../gen/herald/v1/recipient_pb.js";
import { validateProfile } from "../../../domain/recipient-profile.js";
import { withStoreErrors } from "../../../store/errors.js";
import { putRecipient } from "../../../store/recipients.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";
import { toProfileMessage } from "./message.js";

/** PutRecipient: the whole profile, created or replaced; the same call again changes nothing but update_time. */
export function putRecipientHandler(deps: RecipientHandlerDeps) {
  return async (req: PutRecipientRequest, ctx: HandlerContext): Promise<Pick<PutRecipientResponse, "recipient" | "created">> => {
    const call = callInfo(ctx);
    const profile = validateProfile(req.recipient, "recipient", deps.egress);
    const { profile: stored, created } = await withStoreErrors(() => putRecipient(deps.pool, call.tenant, profile));
    return { recipient: toProfileMessage(stored), created };
  };
}
