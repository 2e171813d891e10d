import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type {
  RedriveDeadLettersRequest,
  RedriveDeadLettersResponse,
} from "../../../../gen/herald/v1/dead_letter_pb.js";
import { Status } from "../../../../gen/herald/v1/notification_pb.js";
import { invalidArgument, validateId } from "../../../domain/validate.js";
import type { DeadLetterQuery, DeadLetterStore } from "../../../store/dead-letters.js";
import { callInfo } from "../../call-info.js";
import { toDeadLetterQuery } from "./list.js";
import { type Clock } from "../../../clock.js";

/** Limits of RedriveDeadLetters with a filter. */
export const redriveLimits = { default: 1000, max: 10_000 } as const;

/**
 * RedriveDeadLetters: queues dead letters again with a fresh attempt budget.
 * One id that is not dead is FAILED_PRECONDITION; a filter skips what is not.
 */
export function redriveDeadLettersHandler(deps: { store: Pick<DeadLetterStore, "redrive">; clock: Clock }) {
  return async (
    req: RedriveDeadLettersRequest,
    ctx: HandlerContext,
  ): Promise<Pick<RedriveDeadLettersResponse, "notificationIds">> => {
    const call = callInfo(ctx);
    // Field-number order: the target (1, 2), then limit (3).
    const target = req.target;
    if (target.case === "notificationId") validateId(target.value, "notification_id");
    else if (target.case !== "filter") throw invalidArgument("target", "is required: set notification_id or filter");
    const query: { filter: DeadLetterQuery } | { id: string } = target.case === "filter" ? { filter: toDeadLetterQuery(target.value) } : { id: target.value };
    if (req.limit < 0 || req.limit > redriveLimits.max) {
      throw invalidArgument("limit", `must be 0 to ${redriveLimits.max} (0 means ${redriveLimits.default})`);
    }
    const opts = { now: new Date(deps.clock.now()), correlationId: call.requestId };

    if ("filter" in query) {
      const limit = req.limit === 0 ? redriveLimits.default : req.limit;
      const result = await deps.store.redrive(call.tenant, { filter: query.filter, limit }, opts);
      const ids = result.kind === "redriven" ? result.ids : [];
      call.log.info({ count: ids.length, limit }, "dead letters redriven");
      return { notificationIds: ids };
    }
    const { id } = query;
    const result = await deps.store.redrive(call.tenant, { id }, opts);
    switch (result.kind) {
      case "redriven":
        call.log.info({ notificationId: id }, "dead letter redriven");
        return { notificationIds: result.ids };
      case "not_found":
        throw new ConnectError(`notification ${id} not found`, Code.NotFound);
      case "not_dead":
        throw new ConnectError(
          `notification ${id} is ${Status[result.status]}; only FAILED and DEAD_LETTERED notifications can be redriven`,
          Code.FailedPrecondition,
        );
    }
  };
}
