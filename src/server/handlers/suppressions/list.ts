import type { HandlerContext } from "@connectrpc/connect";
import type { ListSuppressionsRequest, ListSuppressionsResponse } from "../../../../gen/herald/v1/suppression_pb.js";
import { Channel } from "../../../../gen/herald/v1/notification_pb.js";
import { invalidArgument } from "../../../domain/validate.js";
import { withStoreErrors } from "../../../store/errors.js";
import { listSuppressions } from "../../../store/suppressions.js";
import { callInfo } from "../../call-info.js";
import type { SuppressionHandlerDeps } from "./deps.js";
import { toSuppressionMessage } from "./message.js";

/** Limits of ListSuppressions, quoted by the README and the tests. */
export const suppressionListLimits = {
  pageSizeDefault: 100,
  pageSizeMax: 500,
} as const;

/** ListSuppressions: the caller's tenant's suppressions, newest first, a page at a time. */
export function listSuppressionsHandler(deps: SuppressionHandlerDeps) {
  return async (
    req: ListSuppressionsRequest,
    ctx: HandlerContext,
  ): Promise<Pick<ListSuppressionsResponse, "suppressions" | "nextPageToken">> => {
    const call = callInfo(ctx);
    if (req.channel !== Channel.UNSPECIFIED && !(req.channel in Channel)) {
      throw invalidArgument("channel", `must be a known channel, got ${req.channel}`);
    }
    const { pageSizeDefault, pageSizeMax } = suppressionListLimits;
    if (req.pageSize < 0 || req.pageSize > pageSizeMax) {
      throw invalidArgument("page_size", `must be 0 to ${pageSizeMax} (0 means ${pageSizeDefault})`);
    }
    // A page_token the store did not issue is its InvalidPageTokenError: INVALID_ARGUMENT at the edge.
    const page = await withStoreErrors(() =>
      listSuppressions(
        deps.pool,
        call.tenant,
        { channel: req.channel === Channel.UNSPECIFIED ? undefined : req.channel },
        { pageSize: req.pageSize === 0 ? pageSizeDefault : req.pageSize, pageToken: req.pageToken },
      ),
    );
    return { suppressions: page.suppressions.map(toSuppressionMessage), nextPageToken: page.nextPageToken };
  };
}
