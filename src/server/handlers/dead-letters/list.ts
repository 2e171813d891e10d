import type { HandlerContext } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type {
  DeadLetterFilter,
  ListDeadLettersRequest,
  ListDeadLettersResponse,
} from "../../../../gen/herald/v1/dead_letter_pb.js";
import { Channel, Status } from "../../../../gen/herald/v1/notification_pb.js";
import { invalidArgument, longerThan } from "../../../domain/validate.js";
import type { DeadLetterQuery, DeadLetterStore } from "../../../store/dead-letters.js";
import { callInfo } from "../../call-info.js";

/** Limits of the dead-letter RPCs, quoted by the README and the tests. */
export const deadLetterLimits = {
  pageSizeDefault: 100,
  pageSizeMax: 500,
  errorContainsMaxChars: 256,
} as const;

// The google.protobuf.Timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const minSeconds = -62_135_596_800n;
const maxSeconds = 253_402_300_799n;

function instant(ts: Timestamp, path: string): Date {
  if (!Number.isInteger(ts.nanos) || ts.nanos < 0 || ts.nanos > 999_999_999) {
    throw invalidArgument(`${path}.nanos`, "must be 0 to 999999999");
  }
  if (ts.seconds < minSeconds || ts.seconds > maxSeconds) {
    throw invalidArgument(`${path}.seconds`, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z");
  }
  return timestampDate(ts);
}

/** Validates a DeadLetterFilter (unset = match all) and turns it into the store's query. */
export function toDeadLetterQuery(filter: DeadLetterFilter | undefined, path = "filter"): DeadLetterQuery {
  const query: DeadLetterQuery = {};
  if (!filter) return query;
  if (filter.channel !== Channel.UNSPECIFIED) {
    if (!(filter.channel in Channel)) throw invalidArgument(`${path}.channel`, `must be a known channel, got ${filter.channel}`);
    query.channel = filter.channel;
  }
  if (filter.since) query.since = instant(filter.since, `${path}.since`);
  if (filter.until) query.until = instant(filter.until, `${path}.until`);
  if (query.since && query.until && query.since >= query.until) {
    throw invalidArgument(`${path}.until`, "must be after filter.since");
  }
  if (filter.errorContains !== "") {
    if (longerThan(filter.errorContains, deadLetterLimits.errorContainsMaxChars)) {
      throw invalidArgument(`${path}.error_contains`, `must be at most ${deadLetterLimits.errorContainsMaxChars} characters`);
    }
    // PostgreSQL refuses NUL in text.
    if (filter.errorContains.includes("\u0000")) throw invalidArgument(`${path}.error_contains`, "must not contain NUL");
    query.errorContains = filter.errorContains;
  }
  if (filter.status === Status.FAILED || filter.status === Status.DEAD_LETTERED) {
    query.status = filter.status;
  } else if (filter.status !== Status.UNSPECIFIED) {
    throw invalidArgument(`${path}.status`, "must be STATUS_FAILED or STATUS_DEAD_LETTERED when set");
  }
  return query;
}

/** ListDeadLetters: the tenant's open dead letters, newest first, a page at a time. */
export function listDeadLettersHandler(deps: { store: Pick<DeadLetterStore, "list"> }) {
  return async (
    req: ListDeadLettersRequest,
    ctx: HandlerContext,
  ): Promise<Pick<ListDeadLettersResponse, "deadLetters" | "nextPageToken">> => {
    const call = callInfo(ctx);
    const filter = toDeadLetterQuery(req.filter);
    const { pageSizeDefault, pageSizeMax } = deadLetterLimits;
    if (req.pageSize < 0 || req.pageSize > pageSizeMax) {
      throw invalidArgument("page_size", `must be 0 to ${pageSizeMax} (0 means ${pageSizeDefault})`);
    }
    // A page_token the store did not issue is its InvalidPageTokenError: INVALID_ARGUMENT at the edge.
    return deps.store.list(call.tenant, filter, {
      pageSize: req.pageSize === 0 ? pageSizeDefault : req.pageSize,
      pageToken: req.pageToken,
    });
  };
}
