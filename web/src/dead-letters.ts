import { ConnectError } from "@connectrpc/connect";
import type { Clients } from "./client.js";
import { confirmStep } from "./confirm.js";
import { deadLetterDetail } from "./dead-letter-detail.js";
import { deadLetterFilter, type FilterFields, type FilterInit } from "./dead-letter-filter.js";
import { deadLetterTable } from "./dead-letter-table.js";
import { byId } from "./dom.js";
import { codeName } from "./feed.js";
import { outcomeText, redriveEach } from "./redrive.js";

// The dead-letter view's wiring: the filter form, the page of dead letters and
// its paging, the one opened, and redrive (one or a selection), each confirmed
// in the page first and its outcome shown. What it lists is ListDeadLetters'
// answer as is: open dead letters, newest first; a redriven one leaves it.

const PAGE_SIZE = 25;

export function deadLetterView(clients: () => Clients | undefined) {
  const form = byId<HTMLFormElement>("dl-filter");
  const listState = byId("dl-list-state");
  const result = byId("dl-result");
  const redriveSelected = byId<HTMLButtonElement>("dl-redrive-selected");
  const prev = byId<HTMLButtonElement>("dl-prev");
  const next = byId<HTMLButtonElement>("dl-next");
  const pageText = byId("dl-page");
  const confirm = confirmStep({ box: byId("dl-confirm"), text: byId("dl-confirm-text"), yes: byId("dl-confirm-yes"), no: byId("dl-confirm-no") });
  const detail = deadLetterDetail({
    card: byId("dl-detail"),
    id: byId("dl-detail-id"),
    facts: byId("dl-detail-facts"),
    lastError: byId("dl-detail-error"),
    note: byId("dl-detail-note"),
    history: byId<HTMLTableSectionElement>("dl-history-rows"),
  });
  const table = deadLetterTable(byId<HTMLTableSectionElement>("dl-rows"), byId<HTMLInputElement>("dl-select-all"), {
    open: (id) => void open(id),
    selectionChanged(ids) {
      redriveSelected.disabled = ids.length === 0;
      redriveSelected.textContent = `Redrive selected (${ids.length})`;
    },
  });

  let filter: FilterInit = {};
  // The token each page shown so far started from: Previous pops, Next pushes.
  let starts: string[] = [""];
  let nextToken = "";
  let loaded = false;

  function fields(): FilterFields {
    const data = new FormData(form);
    const field = (name: string) => {
      const v = data.get(name);
      return typeof v === "string" ? v : "";
    };
    return { channel: field("channel"), status: field("status"), since: field("since"), until: field("until"), errorContains: field("errorContains") };
  }

  function showError(target: HTMLElement, err: unknown) {
    const e = ConnectError.from(err);
    target.dataset.state = "error";
    target.textContent = `${codeName(e.code)}: ${e.rawMessage}`;
  }

  async function load() {
    const c = clients();
    if (!c) return;
    loaded = true;
    listState.dataset.state = "loading";
    listState.textContent = "loading…";
    try {
      const page = await c.deadLetters.listDeadLetters({ filter, pageSize: PAGE_SIZE, pageToken: starts.at(-1) ?? "" });
      nextToken = page.nextPageToken;
      table.show(page.deadLetters);
      listState.dataset.state = "ok";
      listState.dataset.count = String(page.deadLetters.length);
      listState.textContent = `${page.deadLetters.length} shown${nextToken ? ", more on the next page" : ""}`;
      pageText.textContent = `page ${starts.length}`;
      prev.disabled = starts.length <= 1;
      next.disabled = nextToken === "";
    } catch (err) {
      showError(listState, err);
    }
  }

  async function open(id: string) {
    const c = clients();
    if (!c) return;
    try {
      const [{ deadLetter }, { history }] = await Promise.all([c.deadLetters.getDeadLetter({ notificationId: id }), c.notifications.get({ id })]);
      if (deadLetter) detail.show(deadLetter, history);
    } catch (err) {
      showError(result, err);
    }
  }

  async function redrive(ids: string[]) {
    const c = clients();
    if (!c || ids.length === 0) return;
    const what = ids.length === 1 ? `dead letter ${ids[0]}` : `${ids.length} dead letters`;
    const ok = await confirm.ask(`Redrive ${what}? Each is queued again with a fresh attempt budget.`, `Redrive ${ids.length}`);
    if (!ok) return;
    result.dataset.state = "working";
    result.textContent = `redriving ${what}…`;
    const outcome = await redriveEach(ids, async (id) => (await c.deadLetters.redriveDeadLetters({ target: { case: "notificationId", value: id } })).notificationIds);
    result.dataset.state = outcome.errors.length === 0 ? "ok" : outcome.redriven.length === 0 ? "error" : "partial";
    result.dataset.redriven = String(outcome.redriven.length);
    result.dataset.failed = String(outcome.errors.length);
    result.textContent = outcomeText(outcome);
    await load();
    const opened = detail.current();
    if (opened && outcome.redriven.includes(opened)) {
      const { notification, history } = await c.notifications.get({ id: opened }).catch(() => ({ notification: undefined, history: [] }));
      detail.redriven(notification, history);
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    filter = deadLetterFilter(fields());
    starts = [""];
    void load();
  });
  prev.addEventListener("click", () => {
    if (starts.length > 1) starts.pop();
    void load();
  });
  next.addEventListener("click", () => {
    if (!nextToken) return;
    starts.push(nextToken);
    void load();
  });
  redriveSelected.addEventListener("click", () => void redrive(table.selected()));
  byId("dl-detail-redrive").addEventListener("click", () => void redrive([detail.current()].filter((id) => id !== "")));
  byId("dl-detail-close").addEventListener("click", () => detail.close());

  return {
    /** The view was opened: the first visit (or the first after a new key) lists the first page. */
    shown() {
      if (!loaded) void load();
    },
    /** A new API key: forget what the old one was shown. */
    reset() {
      loaded = false;
      starts = [""];
      table.clear();
      detail.close();
      confirm.cancel();
      result.textContent = "";
      listState.textContent = "";
    },
  };
}
