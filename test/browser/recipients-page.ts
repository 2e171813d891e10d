import type { Page } from "playwright-core";

// What the Notify and recipient test reads from and does to the dashboard
// (web/index.html): the send card in "to a person" mode with Notify's answer,
// the notification table's category and notify columns, and the recipient
// view (#recipients) with a person's profile, preferences and categories.

export interface NotifyFormFields {
  userId: string;
  category?: string;
  /** Channel boxes to tick; none ticked means every channel with a body. */
  channels?: Array<"email" | "sms" | "push" | "webhook">;
  subject?: string;
  text?: string;
  html?: string;
  /** Set to send a template instead of a message. */
  templateId?: string;
  variables?: string;
  priority?: "" | "low" | "normal" | "high";
}

export interface NotifyAnswer {
  state: string;
  /** The result line: the summary, or the error with its code. */
  text: string;
  notifyId: string;
  created: Array<{ id: string; channel: string; status: string; text: string }>;
  skipped: Array<{ channel: string; reason: string; text: string }>;
}

export interface TableRow {
  status: string;
  category: string;
  notifyId: string;
  history: string[];
}

export interface RecipientShown {
  userId: string;
  facts: Record<string, string>;
  prefs: Record<string, string>;
  categories: Array<{ category: string; setting: string; choice: string }>;
}

export function recipientsPage(page: Page) {
  const notifyResult = page.locator("#notify-result");
  const rcState = page.locator("#rc-state");
  return {
    async open(baseUrl: string, apiKey: string, view = "live") {
      await page.goto(`${baseUrl}/#${view}`);
      await page.fill("#api-key", apiKey);
      await page.click("#key-form button[type=submit]");
      await page.waitForSelector('#conn[data-state="live"]');
    },
    async view(name: string) {
      await page.click(`nav a[data-view-link="${name}"]`);
      await page.waitForSelector(`.view[data-view="${name}"]:not([hidden])`);
    },
    /** Which send form shows, and the Notify form's user id. */
    async sendMode(): Promise<{ mode: string; userId: string }> {
      const notify = await page.locator("#notify-form").isVisible();
      return { mode: notify ? "notify" : (await page.locator("#send-form").isVisible()) ? "create" : "none", userId: await page.inputValue("#n-user-id") };
    },
    /** The category box's suggestions (ListCategories), once there are some. */
    async categorySuggestions(): Promise<string[]> {
      await page.waitForSelector("#n-categories option", { state: "attached" });
      return page.$$eval("#n-categories option", (os) => os.map((o) => o.getAttribute("value") ?? ""));
    },
    /** Fills the Notify form, submits it and returns what the page shows for the answer (or the error). */
    async notify(f: NotifyFormFields): Promise<NotifyAnswer> {
      await page.check("#mode-notify");
      await page.fill("#n-user-id", f.userId);
      await page.fill("#n-category", f.category ?? "");
      await page.selectOption("#n-priority", f.priority ?? "");
      for (const c of ["email", "sms", "push", "webhook"] as const) {
        await page.setChecked(`#notify-form input[name=channels][value=${c}]`, (f.channels ?? []).includes(c));
      }
      if (f.templateId !== undefined) {
        await page.selectOption("#n-body", "template");
        await page.fill("#n-template", f.templateId);
        await page.fill("#n-variables", f.variables ?? "");
      } else {
        await page.selectOption("#n-body", "content");
        await page.fill("#n-subject", f.subject ?? "");
        await page.fill("#n-text", f.text ?? "");
        await page.fill("#n-html", f.html ?? "");
      }
      // Marked first, so the wait below sees this submit's answer, not the previous one's.
      await notifyResult.evaluate((n) => n.setAttribute("data-state", "stale"));
      await page.click("#notify");
      await page.waitForSelector('#notify-result[data-state="ok"], #notify-result[data-state="error"]');
      return page.evaluate(() => {
        const result = document.getElementById("notify-result")!;
        const answerShown = !document.getElementById("notify-answer")!.hidden;
        return {
          state: result.getAttribute("data-state") ?? "",
          text: result.textContent ?? "",
          notifyId: answerShown ? (document.getElementById("notify-id")!.textContent ?? "") : "",
          created: answerShown
            ? Array.from(document.querySelectorAll("#notify-created li[data-id]")).map((li) => ({
                id: li.getAttribute("data-id") ?? "",
                channel: li.getAttribute("data-channel") ?? "",
                status: li.getAttribute("data-status") ?? "",
                text: li.querySelector(".what")?.textContent ?? "",
              }))
            : [],
          skipped: answerShown
            ? Array.from(document.querySelectorAll("#notify-skipped li[data-reason]")).map((li) => ({
                channel: li.getAttribute("data-channel") ?? "",
                reason: li.getAttribute("data-reason") ?? "",
                text: li.textContent ?? "",
              }))
            : [],
        };
      });
    },
    /** One notification's row in the live table, or undefined while the page has not heard of it. */
    async row(id: string): Promise<TableRow | undefined> {
      return page.$$eval(
        "#notification-rows tr",
        (trs, wanted) => {
          const tr = trs.find((t) => t.getAttribute("data-id") === wanted);
          if (!tr) return undefined;
          return {
            status: tr.querySelector("td.status")?.textContent ?? "",
            category: tr.querySelector("td.category")?.textContent ?? "",
            notifyId: tr.getAttribute("data-notify-id") ?? "",
            history: Array.from(tr.querySelectorAll(".chip[data-seq]")).map((c) => c.getAttribute("data-status") ?? ""),
          };
        },
        id,
      );
    },
    /** Clicks a row's notify mark; the ids of the rows then marked. */
    async pickNotify(id: string): Promise<string[]> {
      await page.click(`#notification-rows tr[data-id="${id}"] td.notify button`);
      return page.$$eval("#notification-rows tr.picked", (trs) => trs.map((t) => t.getAttribute("data-id") ?? ""));
    },
    /** Looks a user id up in the recipient view; the state line afterwards ("" when shown). */
    async lookup(userId: string): Promise<{ state: string; text: string }> {
      await page.fill("#rc-user-id", userId);
      await rcState.evaluate((n) => n.setAttribute("data-state", "stale"));
      await page.click("#rc-find");
      // Attached, not visible: the line is empty (so has no box) once a person is shown.
      await page.waitForSelector('#rc-state[data-state="ok"], #rc-state[data-state="error"]', { state: "attached" });
      return { state: (await rcState.getAttribute("data-state")) ?? "", text: (await rcState.textContent()) ?? "" };
    },
    /** The person shown, or undefined when the card is hidden. */
    async recipient(): Promise<RecipientShown | undefined> {
      return page.$eval("#rc-card", (card) => {
        if ((card as HTMLElement).hidden) return undefined;
        const facts = (id: string) =>
          Object.fromEntries(Array.from(card.querySelectorAll(`#${id} dd[data-fact]`)).map((dd) => [dd.getAttribute("data-fact") ?? "", dd.textContent ?? ""]));
        return {
          userId: card.getAttribute("data-user-id") ?? "",
          facts: facts("rc-facts"),
          prefs: facts("rc-prefs"),
          categories: Array.from(card.querySelectorAll("#rc-category-rows tr[data-category]")).map((tr) => ({
            category: tr.getAttribute("data-category") ?? "",
            setting: tr.querySelector('[data-field="setting"]')?.textContent ?? "",
            choice: tr.querySelector('[data-field="choice"]')?.textContent ?? "",
          })),
        };
      });
    },
    notifyThisPerson: () => page.click("#rc-notify"),
  };
}

export type RecipientsPage = ReturnType<typeof recipientsPage>;
