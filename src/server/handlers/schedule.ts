import type { HandlerContext } from "@connectrpc/connect";
import type { ScheduleRequest, ScheduleResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import { callInfo } from "../call-info.js";
import { accept, type AcceptDeps } from "./accept.js";
import { prepareSchedule } from "./prepare.js";
import type { PinTemplate } from "./template-ref.js";

/** Schedule: validate, resolve the delivery time, store with status SCHEDULED for the scheduler to release. */
export function scheduleHandler(deps: AcceptDeps & { pinTemplate: PinTemplate }) {
  return async (req: ScheduleRequest, ctx: HandlerContext): Promise<Pick<ScheduleResponse, "notification">> => {
    const call = callInfo(ctx);
    const input = await prepareSchedule(deps, req, { tenant: call.tenant, requestId: call.requestId, now: new Date(deps.clock.now()) });
    if ("replay" in input) return { notification: input.replay };
    return { notification: await accept(deps, input, ctx) };
  };
}
