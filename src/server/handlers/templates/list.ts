import type { HandlerContext } from "@connectrpc/connect";
import type { ListTemplatesRequest, ListTemplatesResponse } from "../../../../gen/herald/v1/template_pb.js";
import { invalidArgument } from "../../../domain/validate.js";
import type { TemplateStore } from "../../../store/templates.js";
import { callInfo } from "../../call-info.js";

/** page_size 0 means this many. */
export const defaultPageSize = 100;
export const maxPageSize = 500;

/** ListTemplates: the latest version of each of the caller's templates, by id, a page at a time. */
export function listTemplatesHandler(deps: { templates: Pick<TemplateStore, "list"> }) {
  return async (
    req: ListTemplatesRequest,
    ctx: HandlerContext,
  ): Promise<Pick<ListTemplatesResponse, "templates" | "nextPageToken">> => {
    const call = callInfo(ctx);
    if (req.pageSize < 0 || req.pageSize > maxPageSize) {
      throw invalidArgument("page_size", `must be 0 to ${maxPageSize} (0 means ${defaultPageSize}), got ${req.pageSize}`);
    }
    // A page_token the store did not issue is its InvalidPageTokenError: INVALID_ARGUMENT at the edge.
    return deps.templates.list(call.tenant, { pageSize: req.pageSize || defaultPageSize, pageToken: req.pageToken });
  };
}
