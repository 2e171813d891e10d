import type { Page } from "playwright-core";

// What the browser test reads from and does to the dashboard, in the page's
// own terms (web/index.html): the key form, the send form, the feed state,
// the notification table and the event log.

export interface PageEvent {
  id: string;
  sequence: number;
  status: string;
}

export interface SendFields {
  channel?: "email" | "sms" | "push" | "webhook";
  to: string;
  userId: string;
  subject: string;
  text: string;
}

export function dashboardPage(page: Page) {
  const conn = page.locator("#conn");
  return {
    async connect(apiKey: string) {
      await page.fill("#api-key", apiKey);
      await page.click("#key-form button[type=submit]");
    },
    /** The feed's state ("live", "reconnecting", ...) and the text shown with it. */
    async state(): Promise<{ state: string; code: string; text: string }> {
      const [state, code, text] = await Promise.all([conn.getAttribute("data-state"), conn.getAttribute("data-code"), conn.textContent()]);
      return { state: state ?? "", code: code ?? "", text: text ?? "" };
    },
    /** Waits for the feed to reach `state`; a feed that stops instead fails at once, with what the page says. */
    async waitForState(state: string, timeoutMs = 30_000) {
      await page.waitForSelector(`#conn[data-state="${state}"], #conn[data-state="stopped"]`, { timeout: timeoutMs });
      const now = await conn.getAttribute("data-state");
      if (now !== state) throw new Error(`the feed is ${now}, not ${state}: ${await conn.textContent()}`);
    },
    /** Fills the send form, submits it and returns the created id (or throws with the error the page shows). */
    async send(fields: SendFields): Promise<string> {
      await page.selectOption("#channel", fields.channel ?? "email");
      await page.fill("#to", fields.to);
      await page.fill("#user-id", fields.userId);
      await page.fill("#subject", fields.subject);
      await page.fill("#text", fields.text);
      await page.click("#send");
      await page.waitForSelector('#send-result[data-state="ok"], #send-result[data-state="error"]');
      const result = page.locator("#send-result");
      if ((await result.getAttribute("data-state")) !== "ok") throw new Error(`send failed: ${await result.textContent()}`);
      return (await result.getAttribute("data-id")) ?? "";
    },
    /** Every row of the event log, in the order received (the log shows newest first). */
    async events(): Promise<PageEvent[]> {
      const rows = await page.$$eval("#event-rows tr", (trs) =>
        trs.map((tr) => ({
          id: tr.getAttribute("data-id") ?? "",
          sequence: Number(tr.getAttribute("data-seq")),
          status: tr.querySelector("td.status")?.textContent ?? "",
        })),
      );
      return rows.reverse();
    },
    /** One notification's row: its current status and its history chips (events only, not snapshot marks). */
    async row(id: string): Promise<{ status: string; history: Array<{ sequence: number; status: string }> } | undefined> {
      return page.$$eval(
        "#notification-rows tr",
        (trs, wanted) => {
          const tr = trs.find((t) => t.getAttribute("data-id") === wanted);
          if (!tr) return undefined;
          return {
            status: tr.querySelector("td.status")?.textContent ?? "",
            history: Array.from(tr.querySelectorAll(".chip[data-seq]")).map((c) => ({
              sequence: Number(c.getAttribute("data-seq")),
              status: c.getAttribute("data-status") ?? "",
            })),
          };
        },
        id,
      );
    },
    async rowCount(id: string): Promise<number> {
      return page.locator(`#notification-rows tr[data-id="${id}"]`).count();
    },
  };
}

export type DashboardPage = ReturnType<typeof dashboardPage>;
