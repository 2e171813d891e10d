import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import type { Category, Preferences, RecipientProfile } from "../../gen/herald/v1/recipient_pb.js";
import type { Clients } from "./client.js";
import { byId, dateTimeText, el } from "./dom.js";
import { codeName } from "./feed.js";
import { categoryRows, channelsText, profileFacts, quietHoursText, type Fact } from "./recipient-summary.js";

// The recipient view: a person looked up by user id, as Herald keeps them
// (GetRecipient), what they agreed to receive (GetPreferences) and the
// tenant's categories (ListCategories) beside their own choice for each.
// Read-only: preferences are the person's to set, through the caller's own
// product (SetPreferences); the page shows what Notify will read.

export interface RecipientViewEvents {
  /** "Notify this person…": the send form, in Notify mode, for this user id. */
  notify(userId: string): void;
}

interface Looked {
  profile: RecipientProfile;
  preferences: Preferences | undefined;
  categories: readonly Category[];
}

export function recipientView(clients: () => Clients | undefined, on: RecipientViewEvents) {
  const form = byId<HTMLFormElement>("rc-lookup");
  const input = byId<HTMLInputElement>("rc-user-id");
  const state = byId("rc-state");
  const card = byId("rc-card");
  const facts = byId("rc-facts");
  const prefs = byId("rc-prefs");
  const categoryBody = byId<HTMLTableSectionElement>("rc-category-rows");
  // Only the latest lookup's answer is shown, however the answers arrive.
  let asked = 0;

  const factNodes = (list: readonly Fact[]) =>
    list.flatMap((f) => [el("dt", {}, f.name), el("dd", { "data-fact": f.name, ...(f.title ? { title: f.title } : {}) }, f.value)]);

  function show({ profile, preferences, categories }: Looked) {
    card.hidden = false;
    card.dataset.userId = profile.userId;
    byId("rc-id").textContent = profile.userId;
    facts.replaceChildren(
      ...factNodes([
        ...profileFacts(profile),
        { name: "updated", value: dateTimeText(profile.updateTime && timestampDate(profile.updateTime)) },
      ]),
    );
    prefs.replaceChildren(
      ...factNodes([
        { name: "opted out of", value: `${channelsText(preferences?.optedOutChannels ?? [])} (every category)` },
        { name: "quiet hours", value: quietHoursText(preferences?.quietHours, profile.timeZone) },
        { name: "set", value: preferences?.updateTime ? dateTimeText(timestampDate(preferences.updateTime)) : "never" },
      ]),
    );
    const rows = categoryRows(categories, preferences);
    categoryBody.replaceChildren(
      ...(rows.length === 0
        ? [el("tr", { class: "empty" }, el("td", { colspan: "4", class: "muted" }, "no categories: the tenant set none and the person chose none"))]
        : rows.map((r) =>
            el(
              "tr",
              { "data-category": r.category, ...(r.required ? { "data-required": "" } : {}), ...(r.unsubscribed ? { "data-unsubscribed": "" } : {}) },
              el("td", { class: "mono" }, r.category),
              el("td", { "data-field": "setting" }, r.setting),
              el("td", { "data-field": "choice" }, r.choice),
              el("td", { class: "muted" }, r.description),
            ),
          )),
    );
  }

  async function lookup(userId: string) {
    const c = clients();
    if (!c || userId === "") return;
    const mine = ++asked;
    state.dataset.state = "loading";
    state.textContent = "looking up…";
    try {
      // The profile first: its NOT_FOUND is the one to show for an unknown user id.
      const { recipient } = await c.recipients.getRecipient({ userId });
      const [{ preferences }, { categories }] = await Promise.all([c.recipients.getPreferences({ userId }), c.recipients.listCategories({})]);
      if (mine !== asked) return;
      if (!recipient) throw new ConnectError("the server answered without a profile");
      show({ profile: recipient, preferences, categories });
      state.dataset.state = "ok";
      state.dataset.code = "";
      state.textContent = "";
    } catch (err) {
      if (mine !== asked) return;
      const e = ConnectError.from(err);
      card.hidden = true;
      state.dataset.state = "error";
      state.dataset.code = codeName(e.code);
      state.textContent = `${codeName(e.code)}: ${e.rawMessage}`;
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void lookup(input.value);
  });
  byId("rc-notify").addEventListener("click", () => {
    const userId = card.dataset.userId;
    if (userId) on.notify(userId);
  });

  return {
    /** A new API key: another tenant's people. */
    reset() {
      asked++;
      card.hidden = true;
      card.dataset.userId = "";
      state.dataset.state = "";
      state.textContent = "";
    },
  };
}
