import { SuppressionService } from "../../gen/herald/v1/suppression_pb.js";
import type { SuppressionHandlerDeps } from "./handlers/suppressions/deps.js";
import { addSuppressionHandler } from "./handlers/suppressions/add.js";
import { listSuppressionsHandler } from "./handlers/suppressions/list.js";
import { removeSuppressionHandler } from "./handlers/suppressions/remove.js";
import { mount, type MountedService } from "./services.js";

/** herald.v1.SuppressionService, wired from one handler per RPC; every call is scoped to the caller's tenant. */
export function suppressionService(deps: SuppressionHandlerDeps): MountedService {
  return mount(SuppressionService, {
    listSuppressions: listSuppressionsHandler(deps),
    addSuppression: addSuppressionHandler(deps),
    removeSuppression: removeSuppressionHandler(deps),
  });
}
