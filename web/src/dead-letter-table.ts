import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { DeadLetter } from "../../gen/herald/v1/dead_letter_pb.js";
import { dateTimeText, el } from "./dom.js";
import { channelName, statusName } from "./notification-table.js";

// One page of dead letters: a row each, a checkbox to select it for redrive,
// its id a button that opens it. The selection is the checked rows of the page
// shown; a new page (or a reload after a redrive) starts with none checked.

export interface DeadLetterTableEvents {
  open(id: string): void;
  selectionChanged(ids: string[]): void;
}

export function deadLetterTable(body: HTMLTableSectionElement, selectAll: HTMLInputElement, on: DeadLetterTableEvents) {
  const boxes = (): HTMLInputElement[] => Array.from(body.querySelectorAll<HTMLInputElement>("input[type=checkbox]"));
  const selected = () => boxes().filter((b) => b.checked).map((b) => b.value);
  const changed = () => {
    const all = boxes();
    const n = all.filter((b) => b.checked).length;
    selectAll.checked = n > 0 && n === all.length;
    selectAll.indeterminate = n > 0 && n < all.length;
    on.selectionChanged(selected());
  };
  selectAll.addEventListener("change", () => {
    for (const b of boxes()) b.checked = selectAll.checked;
    changed();
  });

  function row(d: DeadLetter): HTMLTableRowElement {
    const id = d.notificationId;
    const box = el("input", { type: "checkbox", value: id, "aria-label": `select ${id}` });
    box.addEventListener("change", changed);
    const open = el("button", { type: "button", class: "link", title: "open" }, id);
    open.addEventListener("click", () => on.open(id));
    return el(
      "tr",
      { "data-id": id },
      el("td", {}, box),
      el("td", { class: "id" }, open),
      el("td", { class: "channel" }, channelName(d.channel)),
      el("td", { class: "status", "data-status": statusName(d.status) }, statusName(d.status)),
      el("td", { class: "num" }, String(d.attempts)),
      el("td", { class: "num" }, String(d.redriveCount)),
      el("td", { class: "time" }, dateTimeText(d.deadLetterTime && timestampDate(d.deadLetterTime))),
      el("td", { class: "error", title: d.lastError }, d.lastError),
    );
  }

  return {
    show(page: readonly DeadLetter[]) {
      body.replaceChildren(...page.map(row));
      if (page.length === 0) body.append(el("tr", { class: "empty" }, el("td", { colspan: "8", class: "muted" }, "no dead letters match")));
      changed();
    },
    /** Nothing listed yet (a new key): no rows, not even "no dead letters match". */
    clear() {
      body.replaceChildren();
      changed();
    },
    selected,
  };
}
