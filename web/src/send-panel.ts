import { ConnectError } from "@connectrpc/connect";
import type { NotifyResponse } from "../../gen/herald/v1/notification_service_pb.js";
import type { Clients } from "./client.js";
import { byId, dateTimeText, el } from "./dom.js";
import { codeName } from "./feed.js";
import { channelName, statusName } from "./notification-table.js";
import { answerSummary, createdText, skipReasonName, skippedText } from "./notify-answer.js";
import { notifyRequest, type NotifyFields } from "./notify-form.js";
import { createRequest, isChannel, type SendFields } from "./send-form.js";

// The live view's send card: one of two forms, chosen by the mode switch.
// "To an address" is Create (channel, address, user id, subject, text); "to a
// person" is Notify (a user id whose profile gives the addresses, a category,
// the channels to consider, a message or a template, a priority), whose answer
// is shown in full: what was created and every channel skipped, with why. The
// notifications themselves reach the table by the feed, as any others do.

export type SendMode = "create" | "notify";

export interface SendPanelEvents {
  /** A Notify answered: the table learns the category and notify id of what it created. */
  notified(res: NotifyResponse): void;
}

/** A form's fields as strings (every control is a text input, a select or a checkbox: never a File). */
function formFields(form: HTMLFormElement) {
  const data = new FormData(form);
  return {
    one(name: string): string {
      const v = data.get(name);
      return typeof v === "string" ? v : "";
    },
    all: (name: string): string[] => data.getAll(name).filter((v): v is string => typeof v === "string"),
  };
}

function showError(target: HTMLElement, err: unknown) {
  const e = ConnectError.from(err);
  target.dataset.state = "error";
  target.dataset.id = "";
  target.dataset.code = codeName(e.code);
  target.textContent = `${codeName(e.code)}: ${e.rawMessage}`;
}

/**
 * One idempotency key per filled-in form: resubmitting after a network error
 * cannot send twice, and any edit (or a sent answer) makes it a new request.
 */
function keyPerEdit(form: HTMLFormElement) {
  let key = crypto.randomUUID();
  form.addEventListener("input", () => (key = crypto.randomUUID()));
  return { current: () => key, renew: () => (key = crypto.randomUUID()) };
}

export function sendPanel(clients: () => Clients | undefined, on: SendPanelEvents) {
  const modeCreate = byId<HTMLInputElement>("mode-create");
  const modeNotify = byId<HTMLInputElement>("mode-notify");
  const createForm = byId<HTMLFormElement>("send-form");
  const createButton = byId<HTMLButtonElement>("send");
  const createResult = byId("send-result");
  const notifyForm = byId<HTMLFormElement>("notify-form");
  const notifyButton = byId<HTMLButtonElement>("notify");
  const notifyResult = byId("notify-result");
  const bodyKind = byId<HTMLSelectElement>("n-body");
  const answer = byId("notify-answer");
  const createdList = byId("notify-created");
  const skippedList = byId("notify-skipped");
  const categoryList = byId("n-categories");
  const createKey = keyPerEdit(createForm);
  const notifyKey = keyPerEdit(notifyForm);

  function showMode(mode: SendMode) {
    createForm.hidden = mode !== "create";
    notifyForm.hidden = mode !== "notify";
    if (mode === "notify") void loadCategories();
  }

  function showBody() {
    for (const part of Array.from(notifyForm.querySelectorAll<HTMLElement>("[data-body]"))) part.hidden = part.dataset.body !== bodyKind.value;
  }

  /** The tenant's categories as the category box's suggestions; any name may still be typed. */
  async function loadCategories() {
    const c = clients();
    if (!c) return;
    try {
      const { categories } = await c.recipients.listCategories({});
      categoryList.replaceChildren(...categories.map((k) => el("option", { value: k.category, label: k.description || k.category })));
    } catch {
      // Only suggestions: a failure here leaves the box free-form, and Notify will say what is wrong.
    }
  }

  function showAnswer(res: NotifyResponse) {
    notifyResult.dataset.state = "ok";
    notifyResult.dataset.id = res.notifyId;
    notifyResult.dataset.code = "";
    notifyResult.textContent = answerSummary(res);
    byId("notify-id").textContent = res.notifyId;
    createdList.replaceChildren(
      ...(res.notifications.length === 0
        ? [el("li", { class: "muted" }, "none")]
        : res.notifications.map((n) => el("li", { "data-id": n.id, "data-channel": channelName(n.channel), "data-status": statusName(n.status) }, el("span", { class: "what" }, createdText(n, dateTimeText)), " ", el("span", { class: "mono muted" }, n.id)))),
    );
    skippedList.replaceChildren(
      ...(res.skipped.length === 0
        ? [el("li", { class: "muted" }, "none")]
        : res.skipped.map((s) => el("li", { "data-reason": skipReasonName(s.reason), "data-channel": channelName(s.channel) }, skippedText(s)))),
    );
    answer.hidden = false;
  }

  createForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const c = clients();
    if (!c) return;
    const f = formFields(createForm);
    const channel = f.one("channel");
    if (!isChannel(channel)) return;
    const fields: SendFields = { channel, to: f.one("to"), userId: f.one("userId"), subject: f.one("subject"), text: f.one("text") };
    createButton.disabled = true;
    createResult.dataset.state = "sending";
    createResult.textContent = "sending…";
    c.notifications
      .create(createRequest(fields, createKey.current()))
      .then(({ notification }) => {
        createResult.dataset.state = "ok";
        createResult.dataset.id = notification?.id ?? "";
        createResult.textContent = `created ${notification?.id ?? "?"}`;
        createKey.renew();
      })
      .catch((err: unknown) => showError(createResult, err))
      .finally(() => (createButton.disabled = false));
  });

  notifyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const c = clients();
    if (!c) return;
    const f = formFields(notifyForm);
    const fields: NotifyFields = {
      userId: f.one("userId"),
      category: f.one("category"),
      channels: f.all("channels"),
      body: f.one("body") === "template" ? "template" : "content",
      subject: f.one("subject"),
      text: f.one("text"),
      html: f.one("html"),
      templateId: f.one("templateId"),
      variables: f.one("variables"),
      priority: f.one("priority"),
    };
    const built = notifyRequest(fields, notifyKey.current());
    // The previous answer goes at once: what is shown is always this submit's.
    answer.hidden = true;
    if (!built.ok) {
      notifyResult.dataset.state = "error";
      notifyResult.dataset.id = "";
      notifyResult.dataset.code = "";
      notifyResult.textContent = `${built.field}: ${built.message}`;
      return;
    }
    notifyButton.disabled = true;
    notifyResult.dataset.state = "sending";
    notifyResult.textContent = "sending…";
    c.notifications
      .notify(built.request)
      .then((res) => {
        showAnswer(res);
        on.notified(res);
        notifyKey.renew();
      })
      .catch((err: unknown) => showError(notifyResult, err))
      .finally(() => (notifyButton.disabled = false));
  });

  modeCreate.addEventListener("change", () => showMode("create"));
  modeNotify.addEventListener("change", () => showMode("notify"));
  bodyKind.addEventListener("change", showBody);
  showBody();
  showMode(modeNotify.checked ? "notify" : "create");

  return {
    /** With a key the forms can send (and the category suggestions are the new tenant's); without, not. */
    enabled(connected: boolean) {
      createButton.disabled = !connected;
      notifyButton.disabled = !connected;
      if (!connected) return;
      categoryList.replaceChildren();
      answer.hidden = true;
      notifyResult.textContent = "";
      if (modeNotify.checked) void loadCategories();
    },
    /** Notify mode with this person's user id filled in (from the recipient view). */
    notifyUser(userId: string) {
      modeNotify.checked = true;
      showMode("notify");
      byId<HTMLInputElement>("n-user-id").value = userId;
      notifyKey.renew();
    },
  };
}
