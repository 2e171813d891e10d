import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import type { TemplateStore } from "../store/templates.js";
import { createEngine } from "../templates/compile.js";
import { putTemplateHandler } from "./handlers/templates/put.js";
import { getTemplateHandler } from "./handlers/templates/get.js";
import { listTemplatesHandler } from "./handlers/templates/list.js";
import { mount, type MountedService } from "./services.js";
import { type Clock } from "../clock.js";

export interface TemplateServiceDeps {
  templates: TemplateStore;
  clock: Clock;
}

/** herald.v1.TemplateService, wired from one handler per RPC; every call is scoped to the caller's tenant. */
export function templateService(deps: TemplateServiceDeps): MountedService {
  // One Handlebars environment for the service: PutTemplate only parses and
  // compiles with it, so nothing a tenant stores changes it.
  const engine = createEngine();
  return mount(TemplateService, {
    putTemplate: putTemplateHandler({ ...deps, engine }),
    getTemplate: getTemplateHandler(deps),
    listTemplates: listTemplatesHandler(deps),
  });
}
