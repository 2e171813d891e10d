import type { HandlerContext } from "@connectrpc/connect";
import type { ListRecipientsRequest, ListRecipientsResponse } from "../../../../gen/herald/v1/recipient_pb.js";
import { invalidArgument } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { listRecipients } from "../../../store/recipients.js";
import { callInfo } from "../../call-info.js";
import type { RecipientHandlerDeps } from "./deps.js";
import { toProfileMessage } from "./message.js";

/** Limits of ListRecipients, quoted by the README and the tests. */
export const recipientListLimits = {
  pageSizeDefault: 100,
  pageSizeMax: 500,
} as const;

/** ListRecipients: the caller's tenant's profiles in user_id order, a page at a time. */
export function listRecipientsHandler(deps: RecipientHandlerDeps) {
  return async (req: ListRecipientsRequest, ctx: HandlerContext): Promise<Pick<ListRecipientsResponse, "recipients" | "nextPageToken">> => {
    const call = callInfo(ctx);
    const { pageSizeDefault, pageSizeMax } = recipientListLimits;
    if (req.pageSize < 0 || req.pageSize > pageSizeMax) {
      throw invalidArgument("page_size", `must be 0 to ${pageSizeMax} (0 means ${pageSizeDefault})`);
    }
    // A page_token the store did not issue is its InvalidPageTokenError: INVALID_ARGUMENT at the edge.
    const page = await withStoreErrors(() =>
      listRecipients(deps.pool, call.tenant, { pageSize: req.pageSize === 0 ? pageSizeDefault : req.pageSize, pageToken: req.pageToken }),
    );
    return { recipients: page.recipients.map(toProfileMessage), nextPageToken: page.nextPageToken };
  };
}
