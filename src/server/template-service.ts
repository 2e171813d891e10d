import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import type { TemplateStore } from "../store/templates.js";
import type { TemplateCompiler } from "../templates/compile-pool.js";
import { putTemplateHandler } from "./handlers/templates/put.js";
import { getTemplateHandler } from "./handlers/templates/get.js";
import { listTemplatesHandler } from "./handlers/templates/list.js";
import { mount, type MountedService } from "./services.js";
import { type Clock } from "../clock.js";

export interface TemplateServiceDeps {
  templates: TemplateStore;
  clock: Clock;
  /** PutTemplate's parse and compile, off the event loop (templates/compile-pool.ts). */
  compiler: TemplateCompiler;
}

/** herald.v1.TemplateService, wired from one handler per RPC; every call is scoped to the caller's tenant. */
export function templateService(deps: TemplateServiceDeps): MountedService {
  return mount(TemplateService, {
    putTemplate: putTemplateHandler(deps),
    getTemplate: getTemplateHandler(deps),
    listTemplates: listTemplatesHandler(deps),
  });
}
