import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Channel, Status, type Notification, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { el, timeText } from "./dom.js";

// One row per notification: its current state and the statuses it went
// through, in the order the events arrived. The order is not re-sorted here:
// the server promises sequence order, and a violation should be visible.
// A status event carries neither category nor notify id: those are filled in
// from what the page holds whole (the snapshot, and the notifications its own
// Notify created), and stay blank for a notification only heard of by events.

interface Row {
  tr: HTMLTableRowElement;
  status: HTMLTableCellElement;
  attempts: HTMLTableCellElement;
  updated: HTMLTableCellElement;
  history: HTMLTableCellElement;
  category: HTMLTableCellElement;
  notify: HTMLTableCellElement;
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
      category: el("td", { class: "category" }),
      notify: el("td", { class: "notify" }),
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
      cells.category,
      cells.notify,
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

  /** Its category and the Notify request it came from (a button marking that request's rows). */
  function describe(row: Row, n: Notification) {
    row.category.textContent = n.category;
    if (!n.notifyId || row.tr.dataset.notifyId === n.notifyId) return;
    row.tr.dataset.notifyId = n.notifyId;
    row.tr.classList.toggle("picked", body.dataset.picked === n.notifyId);
    // UUIDv7s of one moment share their start; the end tells two requests apart.
    const mark = el("button", { type: "button", class: "link", title: `Notify ${n.notifyId}: mark every notification of this request` }, `…${n.notifyId.slice(-8)}`);
    mark.addEventListener("click", () => pick(n.notifyId));
    row.notify.replaceChildren(mark);
  }

  /** Marks the rows of one Notify request; picking the marked one again clears the mark. */
  function pick(notifyId: string) {
    const again = body.dataset.picked === notifyId;
    body.dataset.picked = again ? "" : notifyId;
    for (const r of rows.values()) r.tr.classList.toggle("picked", !again && r.tr.dataset.notifyId === notifyId);
  }

  return {
    /** The state of one notification when the stream began (no history before it). */
    snapshot(n: Notification) {
      const row = rowFor(n.id, n.channel, n.recipient?.userId ?? "");
      describe(row, n);
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
    /**
     * Notifications the page's Notify created: their category and notify id.
     * The feed may have shown them already (then its status stands) or not yet
     * (then the answer's status is shown until the first event).
     */
    notified(list: readonly Notification[]) {
      for (const n of list) {
        const row = rowFor(n.id, n.channel, n.recipient?.userId ?? "");
        describe(row, n);
        if (row.sequence === 0) show(row, n.status, n.attempts, n.updateTime && timestampDate(n.updateTime));
      }
    },
    clear() {
      body.dataset.picked = "";
      rows.clear();
      body.replaceChildren();
    },
  };
}
