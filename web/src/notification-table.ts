import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Channel, Status, type Notification, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { el, timeText } from "./dom.js";

// One row per notification: its current state and the statuses it went
// through, in the order the events arrived. The order is not re-sorted here:
// the server promises sequence order, and a violation should be visible.

interface Row {
  tr: HTMLTableRowElement;
  status: HTMLTableCellElement;
  attempts: HTMLTableCellElement;
  updated: HTMLTableCellElement;
  history: HTMLTableCellElement;
  /** The highest sequence seen: the current status is that event's. */
  sequence: number;
}

export const statusName = (s: Status): string => Status[s] ?? String(s);
export const channelName = (c: Channel): string => (Channel[c] ?? String(c)).toLowerCase();

export function notificationTable(body: HTMLTableSectionElement) {
  const rows = new Map<string, Row>();

  function rowFor(id: string, channel: Channel, userId: string): Row {
    let row = rows.get(id);
    if (row) return row;
    const cells = {
      status: el("td", { class: "status" }),
      attempts: el("td", { class: "num" }),
      updated: el("td", { class: "time" }),
      history: el("td", { class: "history" }),
    };
    const tr = el(
      "tr",
      { "data-id": id },
      el("td", { class: "id", title: id }, id),
      el("td", {}, channelName(channel)),
      el("td", {}, userId),
      cells.status,
      cells.attempts,
      cells.updated,
      cells.history,
    );
    row = { tr, ...cells, sequence: 0 };
    rows.set(id, row);
    // Newest first: a notification appears at the top when first heard of.
    body.prepend(tr);
    return row;
  }

  function show(row: Row, status: Status, attempts: number, at: Date | undefined) {
    row.status.textContent = statusName(status);
    row.status.dataset.status = statusName(status);
    row.attempts.textContent = String(attempts);
    row.updated.textContent = timeText(at);
  }

  return {
    /** The state of one notification when the stream began (no history before it). */
    snapshot(n: Notification) {
      const row = rowFor(n.id, n.channel, n.recipient?.userId ?? "");
      show(row, n.status, n.attempts, n.updateTime && timestampDate(n.updateTime));
      row.history.append(el("span", { class: "chip snapshot", title: "state when the feed started" }, statusName(n.status)));
    },
    event(e: StatusEvent) {
      const row = rowFor(e.notificationId, e.channel, e.userId);
      const at = e.time && timestampDate(e.time);
      if (e.sequence > row.sequence) {
        row.sequence = e.sequence;
        show(row, e.status, e.attempt, at);
      }
      row.history.append(
        el("span", { class: "chip", "data-seq": String(e.sequence), "data-status": statusName(e.status), title: `#${e.sequence} ${e.detail}` }, statusName(e.status)),
      );
    },
    clear() {
      rows.clear();
      body.replaceChildren();
    },
  };
}
