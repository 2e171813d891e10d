import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import type { WatchStatusRequest } from "../../gen/herald/v1/notification_service_pb.js";
import type { CursorCodec } from "./cursor.js";
import { controlChars, invalidArgument, limits, longerThan, validateId } from "./validate.js";

// WatchStatusRequest → what to stream. Pure: the handler adds the tenant from the API key,
// so a selector can never name another tenant.

export interface WatchSelection {
  tenant: string;
  notificationId?: string;
  userId?: string;
  /** Empty: every status / channel. */
  statuses: ReadonlySet<Status>;
  channels: ReadonlySet<Channel>;
}

export interface WatchPlan {
  selection: WatchSelection;
  /** Resume strictly after this feed position; snapshot is then ignored. */
  after?: number;
  snapshot: boolean;
  /** With snapshot and a recipient or tenant selector: notifications created at or after this. */
  snapshotSince?: Date;
}

const knownStatuses = new Set(Object.values(Status).filter((v): v is Status => typeof v === "number" && v !== Status.UNSPECIFIED));
const knownChannels = new Set(Object.values(Channel).filter((v): v is Channel => typeof v === "number" && v !== Channel.UNSPECIFIED));

/** Checks fields in field-number order, so the first broken rule is the one reported. */
export function planWatch(tenant: string, req: WatchStatusRequest, cursors: Pick<CursorCodec, "decode">): WatchPlan {
  let notificationId: string | undefined;
  let userId: string | undefined;
  if (req.selector.case === "notificationId") {
    validateId(req.selector.value, "notification_id");
    notificationId = req.selector.value.toLowerCase();
  } else if (req.selector.case === "userId") {
    userId = req.selector.value;
    if (userId === "") throw invalidArgument("user_id", "must not be empty (leave the selector unset to watch the whole tenant)");
    if (longerThan(userId, limits.userIdMaxChars)) throw invalidArgument("user_id", `must be at most ${limits.userIdMaxChars} characters`);
    if (controlChars.test(userId)) throw invalidArgument("user_id", "must not contain control characters");
  }
  const selection: WatchSelection = {
    tenant,
    statuses: checkedSet(req.statuses, knownStatuses, "statuses", "a known status other than STATUS_UNSPECIFIED"),
    channels: checkedSet(req.channels, knownChannels, "channels", "a known channel other than CHANNEL_UNSPECIFIED"),
    ...(notificationId !== undefined ? { notificationId } : {}),
    ...(userId !== undefined ? { userId } : {}),
  };
  const plan: WatchPlan = { selection, snapshot: req.snapshot };
  if (req.snapshotSince) {
    if (!req.snapshot) throw invalidArgument("snapshot_since", "is only allowed with snapshot");
    const { seconds, nanos } = req.snapshotSince;
    // The Timestamp range of google/protobuf/timestamp.proto: 0001-01-01 to 9999-12-31.
    if (seconds < -62135596800n || seconds > 253402300799n || nanos < 0 || nanos > 999_999_999) {
      throw invalidArgument("snapshot_since", "must be a valid timestamp");
    }
    plan.snapshotSince = timestampDate(req.snapshotSince);
  }
  if (req.after !== "") {
    const position = cursors.decode(tenant, req.after);
    if (position === undefined) throw invalidArgument("after", "must be a cursor from a previous WatchStatusResponse");
    plan.after = position;
  }
  return plan;
}

function checkedSet<T extends number>(values: readonly T[], known: ReadonlySet<T>, path: string, rule: string): Set<T> {
  values.forEach((v, i) => {
    if (!known.has(v)) throw invalidArgument(`${path}[${i}]`, `must be ${rule}`);
  });
  return new Set(values);
}

/** Whether a selection wants an event; the tenant is matched by the caller's index. */
export function selects(selection: WatchSelection, e: { notificationId: string; userId: string; status: Status; channel: Channel }): boolean {
  if (selection.notificationId !== undefined && selection.notificationId !== e.notificationId) return false;
  if (selection.userId !== undefined && selection.userId !== e.userId) return false;
  if (selection.statuses.size > 0 && !selection.statuses.has(e.status)) return false;
  if (selection.channels.size > 0 && !selection.channels.has(e.channel)) return false;
  return true;
}
