import type { Page } from "playwright-core";

// What the dead-letter test reads from and does to the dashboard's dead-letter
// view (web/index.html, #dead-letters): the filter form, the rows and their
// checkboxes, the confirm step, the outcome line and the opened dead letter.

export interface DeadLetterFilterFields {
  channel?: "" | "email" | "sms" | "push" | "webhook";
  status?: "" | "FAILED" | "DEAD_LETTERED";
  errorContains?: string;
  /** datetime-local values ("2026-12-03T22:40"), in the browser's time zone. */
  since?: string;
  until?: string;
}

export interface ListedDeadLetter {
  id: string;
  channel: string;
  status: string;
  attempts: number;
  lastError: string;
}

export function deadLettersPage(page: Page) {
  const listState = page.locator("#dl-list-state");
  return {
    async open(baseUrl: string, apiKey: string) {
      await page.goto(`${baseUrl}/#dead-letters`);
      await page.fill("#api-key", apiKey);
      await page.click("#key-form button[type=submit]");
      await page.waitForSelector('#dl-list-state[data-state="ok"], #dl-list-state[data-state="error"]');
    },
    /** Applies the filter and waits for the list it asked for (or throws with the error the page shows). */
    async filter(fields: DeadLetterFilterFields) {
      const error = await this.filterError(fields);
      if (error !== undefined) throw new Error(`list failed: ${error}`);
    },
    /** Applies the filter; the error the page shows for it, or undefined when it listed. */
    async filterError(fields: DeadLetterFilterFields): Promise<string | undefined> {
      await page.selectOption("#dl-channel", fields.channel ?? "");
      await page.selectOption("#dl-status", fields.status ?? "");
      await page.fill("#dl-error", fields.errorContains ?? "");
      await page.fill("#dl-since", fields.since ?? "");
      await page.fill("#dl-until", fields.until ?? "");
      // Marked first, so the wait below sees this load's answer, not the previous one's.
      await listState.evaluate((n) => n.setAttribute("data-state", "stale"));
      await page.click("#dl-apply");
      await page.waitForSelector('#dl-list-state[data-state="ok"], #dl-list-state[data-state="error"]');
      return (await listState.getAttribute("data-state")) === "ok" ? undefined : ((await listState.textContent()) ?? "");
    },
    /** Previous or Next page; waits for its list. */
    async page(which: "prev" | "next") {
      await listState.evaluate((n) => n.setAttribute("data-state", "stale"));
      await page.click(`#dl-${which}`);
      await page.waitForSelector('#dl-list-state[data-state="ok"], #dl-list-state[data-state="error"]');
      if ((await listState.getAttribute("data-state")) !== "ok") throw new Error(`list failed: ${await listState.textContent()}`);
    },
    /** "page 2", and whether Previous and Next can be pressed. */
    async pager() {
      return {
        text: (await page.textContent("#dl-page")) ?? "",
        prev: await page.locator("#dl-prev").isEnabled(),
        next: await page.locator("#dl-next").isEnabled(),
      };
    },
    async rows(): Promise<ListedDeadLetter[]> {
      return page.$$eval("#dl-rows tr[data-id]", (trs) =>
        trs.map((tr) => ({
          id: tr.getAttribute("data-id") ?? "",
          channel: tr.querySelector("td.channel")?.textContent ?? "",
          status: tr.querySelector("td.status")?.textContent ?? "",
          attempts: Number(tr.querySelector("td.num")?.textContent),
          lastError: tr.querySelector("td.error")?.textContent ?? "",
        })),
      );
    },
    async select(ids: readonly string[]) {
      for (const id of ids) await page.check(`#dl-rows tr[data-id="${id}"] input[type=checkbox]`);
    },
    /** Opens one (its id in the list) and waits for its detail. */
    async openOne(id: string) {
      await page.click(`#dl-rows tr[data-id="${id}"] button.link`);
      await page.waitForSelector(`#dl-detail[data-id="${id}"]:not([hidden])`);
    },
    async detail() {
      return page.$eval("#dl-detail", (card) => ({
        id: card.getAttribute("data-id") ?? "",
        facts: Object.fromEntries(Array.from(card.querySelectorAll("dd[data-fact]")).map((dd) => [dd.getAttribute("data-fact") ?? "", dd.textContent ?? ""])),
        lastError: card.querySelector("#dl-detail-error")?.textContent ?? "",
        note: card.querySelector<HTMLElement>("#dl-detail-note")?.hidden ? "" : (card.querySelector("#dl-detail-note")?.textContent ?? ""),
        history: Array.from(card.querySelectorAll("#dl-history-rows tr")).map((tr) => ({
          sequence: Number(tr.getAttribute("data-seq")),
          status: tr.querySelector("td.status")?.textContent ?? "",
          detail: tr.querySelector("td.detail")?.textContent ?? "",
        })),
      }));
    },
    redriveSelected: () => page.click("#dl-redrive-selected"),
    redriveOpened: () => page.click("#dl-detail-redrive"),
    /** The confirm step's question, once it shows. */
    async confirmQuestion(): Promise<string> {
      await page.waitForSelector("#dl-confirm:not([hidden])");
      return (await page.textContent("#dl-confirm-text")) ?? "";
    },
    /** Confirms, and waits for the outcome line. */
    async confirm() {
      await page.locator("#dl-result").evaluate((n) => n.setAttribute("data-state", "stale"));
      await page.click("#dl-confirm-yes");
      await page.waitForSelector('#dl-result[data-state="ok"], #dl-result[data-state="partial"], #dl-result[data-state="error"]');
      // The list is read again after a redrive; wait for that answer too.
      await page.waitForSelector('#dl-list-state[data-state="ok"], #dl-list-state[data-state="error"]');
    },
    cancel: () => page.click("#dl-confirm-no"),
    async result() {
      const r = page.locator("#dl-result");
      const [state, redriven, failed, text] = await Promise.all([r.getAttribute("data-state"), r.getAttribute("data-redriven"), r.getAttribute("data-failed"), r.textContent()]);
      return { state: state ?? "", redriven: Number(redriven), failed: Number(failed), text: text ?? "" };
    },
    confirmHidden: () => page.locator("#dl-confirm").isHidden(),
  };
}

export type DeadLettersPage = ReturnType<typeof deadLettersPage>;
