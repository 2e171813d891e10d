import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { el, timeText } from "./dom.js";
import { statusName } from "./notification-table.js";

/** Rows kept; older ones are dropped so a long-open page stays light. */
const MAX_ROWS = 1000;

/**
 * Every event as it arrived, newest first, one row per message received. Rows
 * carry (notification id, sequence) as data attributes and are never merged:
 * a repeated event shows as two rows.
 */
export function eventLog(body: HTMLTableSectionElement) {
  return {
    add(e: StatusEvent) {
      body.prepend(
        el(
          "tr",
          { "data-id": e.notificationId, "data-seq": String(e.sequence) },
          el("td", { class: "time" }, timeText(e.time && timestampDate(e.time))),
          el("td", { class: "id", title: e.notificationId }, e.notificationId),
          el("td", { class: "num" }, String(e.sequence)),
          el("td", { class: "status", "data-status": statusName(e.status) }, statusName(e.status)),
          el("td", { class: "num" }, String(e.attempt)),
          el("td", { class: "detail" }, e.detail),
        ),
      );
      while (body.rows.length > MAX_ROWS) body.lastElementChild?.remove();
    },
    clear() {
      body.replaceChildren();
    },
  };
}
