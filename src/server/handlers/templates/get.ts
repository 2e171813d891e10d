import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { GetTemplateRequest, GetTemplateResponse } from "../../../../gen/herald/v1/template_pb.js";
import type { TemplateStore } from "../../../store/templates.js";
import { callInfo } from "../../call-info.js";
import { validateTemplateId } from "./put.js";

/** GetTemplate: one version of one of the caller's templates (0 = the latest); anything else is NOT_FOUND. */
export function getTemplateHandler(deps: { templates: Pick<TemplateStore, "get"> }) {
  return async (req: GetTemplateRequest, ctx: HandlerContext): Promise<Pick<GetTemplateResponse, "template">> => {
    const call = callInfo(ctx);
    validateTemplateId(req.templateId);
    const template = await deps.templates.get(call.tenant, req.templateId, req.version);
    if (!template) {
      const what = req.version === 0 ? "not found" : `version ${req.version} not found`;
      throw new ConnectError(`template ${JSON.stringify(req.templateId)} ${what}`, Code.NotFound);
    }
    return { template };
  };
}
