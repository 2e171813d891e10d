import { OperationsService } from "../../gen/herald/v1/operations_pb.js";
import { getOverviewHandler, type OverviewDeps } from "./handlers/operations/get-overview.js";
import { mount, type MountedService } from "./services.js";

/**
 * herald.v1.OperationsService: how the pipeline is doing, for the dashboard's operations view and
 * `herald status`. Its figures are deployment-wide and hold no tenant data, so any valid API key
 * may call it (the edge still requires one).
 */
export function operationsService(deps: OverviewDeps): MountedService {
  return mount(OperationsService, { getOverview: getOverviewHandler(deps) });
}
