import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { DeadLetter } from "../../gen/herald/v1/dead_letter_pb.js";
import type { Notification, StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { dateTimeText, el } from "./dom.js";
import { channelName, statusName } from "./notification-table.js";

// One dead letter opened: what GetDeadLetter says of it (channel, status,
// attempts, redrives, when, the last error in full) and its whole history from
// Get (every status event, with the detail each recorded: the error of each
// failed attempt, "redriven", ...), oldest first as the server keeps them.

export interface DetailParts {
  card: HTMLElement;
  id: HTMLElement;
  facts: HTMLElement;
  lastError: HTMLElement;
  /** Says when the notification shown is no longer a dead letter. */
  note: HTMLElement;
  history: HTMLTableSectionElement;
}

export function deadLetterDetail(parts: DetailParts) {
  const fact = (name: string, value: string) => [el("dt", {}, name), el("dd", { "data-fact": name }, value)];
  function showHistory(history: readonly StatusEvent[]) {
    parts.history.replaceChildren(
      ...history.map((e) =>
        el(
          "tr",
          { "data-seq": String(e.sequence) },
          el("td", { class: "num" }, String(e.sequence)),
          el("td", { class: "time" }, dateTimeText(e.time && timestampDate(e.time))),
          el("td", { class: "status", "data-status": statusName(e.status) }, statusName(e.status)),
          el("td", { class: "num" }, String(e.attempt)),
          el("td", { class: "detail" }, e.detail),
        ),
      ),
    );
  }
  return {
    show(d: DeadLetter, history: readonly StatusEvent[]) {
      parts.card.hidden = false;
      parts.note.hidden = true;
      parts.card.dataset.id = d.notificationId;
      parts.id.textContent = d.notificationId;
      parts.facts.replaceChildren(
        ...fact("channel", channelName(d.channel)),
        ...fact("status", statusName(d.status)),
        ...fact("attempts", String(d.attempts)),
        ...fact("redrives", String(d.redriveCount)),
        ...fact("dead-lettered", dateTimeText(d.deadLetterTime && timestampDate(d.deadLetterTime))),
        ...fact("user", d.notification?.recipient?.userId ?? ""),
      );
      parts.lastError.textContent = d.lastError;
      showHistory(history);
    },
    /**
     * The one shown was redriven: it is no longer a dead letter (GetDeadLetter
     * would say NOT_FOUND), so the facts stay as they were, with a note of its
     * status now, and the history grows by what happened since.
     */
    redriven(n: Notification | undefined, history: readonly StatusEvent[]) {
      parts.note.hidden = false;
      parts.note.dataset.status = n ? statusName(n.status) : "";
      parts.note.textContent = `No longer a dead letter: redriven, now ${n ? statusName(n.status) : "unknown"}.`;
      showHistory(history);
    },
    /** The id shown, or "" when closed. */
    current: () => (parts.card.hidden ? "" : (parts.card.dataset.id ?? "")),
    close() {
      parts.card.hidden = true;
      parts.card.dataset.id = "";
    },
  };
}
