import { toJson } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { WatchStatusResponseSchema, type WatchStatusResponse } from "../../gen/herald/v1/notification_service_pb.js";

// What `herald watch` prints for each message of the stream: one line, so the output can be
// piped to grep, awk or a file and still read one event per line.

/** The widest status name (DEAD_LETTERED), so the attempt and detail columns line up. */
const statusWidth = 13;

function when(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toISOString() : "-";
}

function flat(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function statusName(s: Status): string {
  return Status[s] ?? String(s);
}

/**
 * `time  id  STATUS  attempt=N  detail` for an event; a snapshot (the state a notification was in
 * when the watch began) prints `snapshot STATUS` with its last change time and last error.
 * Heartbeats print nothing: they only move the cursor.
 */
export function formatLine(msg: WatchStatusResponse): string | undefined {
  const line = (time: string, id: string, status: string, attempt: number, detail: string) =>
    `${time}  ${id}  ${status.padEnd(statusWidth)}  attempt=${attempt}  ${flat(detail)}`.trimEnd() + "\n";
  switch (msg.kind.case) {
    case "event": {
      const e = msg.kind.value;
      return line(when(e.time), e.notificationId, statusName(e.status), e.attempt, e.detail);
    }
    case "snapshot": {
      const n = msg.kind.value;
      return line(when(n.updateTime), n.id, `snapshot ${statusName(n.status)}`, n.attempts, n.lastError);
    }
    default:
      return undefined;
  }
}

/** `--json`: the message as proto JSON on one line (cursor included), heartbeats left out as in text. */
export function formatJson(msg: WatchStatusResponse): string | undefined {
  if (msg.kind.case !== "event" && msg.kind.case !== "snapshot") return undefined;
  return JSON.stringify(toJson(WatchStatusResponseSchema, msg)) + "\n";
}
