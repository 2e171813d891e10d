import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { DeadLetterFilterSchema } from "../../gen/herald/v1/dead_letter_pb.js";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";

export type FilterInit = MessageInitShape<typeof DeadLetterFilterSchema>;

/** The dead-letter filter form as typed: every field a string, "" meaning "any". */
export interface FilterFields {
  channel: string;
  status: string;
  /** A datetime-local value ("2026-12-03T22:40"), read in the browser's time zone. */
  since: string;
  until: string;
  errorContains: string;
}

const channels: Record<string, Channel> = { email: Channel.EMAIL, sms: Channel.SMS, push: Channel.PUSH, webhook: Channel.WEBHOOK };
const statuses: Record<string, Status> = { FAILED: Status.FAILED, DEAD_LETTERED: Status.DEAD_LETTERED };

/**
 * The ListDeadLetters filter for the form. Only the form's own choices are
 * mapped; the rules (until after since, error text at most 256 characters) are
 * the server's, and its INVALID_ARGUMENT, naming the field, is shown as is.
 */
export function deadLetterFilter(fields: FilterFields): FilterInit {
  const filter: FilterInit = {};
  const channel = channels[fields.channel];
  if (channel !== undefined) filter.channel = channel;
  const status = statuses[fields.status];
  if (status !== undefined) filter.status = status;
  const since = localTime(fields.since);
  if (since) filter.since = timestampFromDate(since);
  const until = localTime(fields.until);
  if (until) filter.until = timestampFromDate(until);
  // Not trimmed: an error text may well begin or end with a space the operator meant.
  if (fields.errorContains !== "") filter.errorContains = fields.errorContains;
  return filter;
}

/** A datetime-local value as an instant; "" or an unreadable value is no bound. */
function localTime(value: string): Date | undefined {
  if (value === "") return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
