import type { HandlerContext } from "@connectrpc/connect";
import type { CreateRequest, CreateResponse } from "../../../gen/herald/v1/notification_service_pb.js";
import { callInfo } from "../call-info.js";
import { accept, type AcceptDeps } from "./accept.js";
import { prepareCreate } from "./prepare.js";
import type { PinTemplate } from "./template-ref.js";

/** Create: validate, store with status QUEUED (the outbox carries it to Kafka), answer. */
export function createHandler(deps: AcceptDeps & { pinTemplate: PinTemplate }) {
  return async (req: CreateRequest, ctx: HandlerContext): Promise<Pick<CreateResponse, "notification">> => {
    const call = callInfo(ctx);
    const input = await prepareCreate(deps, req, { tenant: call.tenant, requestId: call.requestId, now: new Date(deps.clock.now()) });
    return { notification: await accept(deps, input, ctx) };
  };
}
