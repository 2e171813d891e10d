import { heraldClients, type Clients } from "./client.js";
import { deadLetterView } from "./dead-letters.js";
import { byId, timeText } from "./dom.js";
import { eventLog } from "./event-log.js";
import { sleep, startFeed, type Feed, type FeedState } from "./feed.js";
import { notificationTable } from "./notification-table.js";
import { operationsView } from "./operations.js";
import { recipientView } from "./recipients.js";
import { sendPanel } from "./send-panel.js";
import { viewSwitcher, type ViewName } from "./views.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";

// The dashboard's wiring: the key form, the views, the send card and the live
// feed. Each piece is in its own module; this one only connects them to the page.

// sessionStorage, not localStorage: the key goes when the tab closes.
const KEY_STORAGE = "herald.apiKey";

const keyForm = byId<HTMLFormElement>("key-form");
const keyInput = byId<HTMLInputElement>("api-key");
const conn = byId("conn");
const stats = byId("stats");
const table = notificationTable(byId<HTMLTableSectionElement>("notification-rows"));
const log = eventLog(byId<HTMLTableSectionElement>("event-rows"));

let session: { clients: Clients; feed: Feed } | undefined;
const ops = operationsView(() => session?.clients);
const deadLetters = deadLetterView(() => session?.clients);
const send = sendPanel(() => session?.clients, { notified: (res) => table.notified(res.notifications) });
const recipients = recipientView(() => session?.clients, {
  notify(userId) {
    send.notifyUser(userId);
    location.hash = "#live";
  },
});

/** The operations view polls only while shown; the dead-letter view lists on its first showing. */
function viewShown(view: ViewName) {
  if (view === "operations") ops.start();
  else ops.stop();
  if (view === "dead-letters") deadLetters.shown();
}
const views = viewSwitcher(document, viewShown);
let events = 0;
let heartbeat: Date | undefined;

function showState(state: FeedState) {
  conn.dataset.state = state.kind;
  conn.dataset.code = "code" in state ? state.code : "";
  conn.textContent =
    state.kind === "connecting" ? (state.resuming ? "resuming…" : "connecting…")
    : state.kind === "live" ? "live"
    : state.kind === "reconnecting" ? `reconnecting… ${state.code}: ${state.message} (next try in ${(state.delayMs / 1000).toFixed(1)} s)`
    : `stopped: ${state.code}: ${state.message}`;
}

function showStats() {
  stats.textContent = `${events} events` + (heartbeat ? ` · heartbeat ${timeText(heartbeat)}` : "");
}

function connect(apiKey: string) {
  session?.feed.stop();
  table.clear();
  log.clear();
  events = 0;
  heartbeat = undefined;
  showStats();
  ops.reset();
  deadLetters.reset();
  recipients.reset();
  const clients = heraldClients(location.origin, apiKey);
  const feed = startFeed({
    watch: (req, opts) => clients.notifications.watchStatus(req, opts),
    onState: showState,
    sleep,
    onMessage(msg) {
      switch (msg.kind.case) {
        case "snapshot":
          table.snapshot(msg.kind.value);
          break;
        case "event":
          table.event(msg.kind.value);
          log.add(msg.kind.value);
          events++;
          break;
        case "heartbeat":
          heartbeat = msg.kind.value.time ? timestampDate(msg.kind.value.time) : new Date();
          break;
      }
      showStats();
    },
  });
  session = { clients, feed };
  send.enabled(true);
  viewShown(views.current());
}

keyForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const apiKey = keyInput.value.trim();
  if (!apiKey) return;
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  connect(apiKey);
});

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) {
  keyInput.value = saved;
  connect(saved);
} else {
  conn.dataset.state = "idle";
  conn.textContent = "not connected: enter an API key";
  send.enabled(false);
  showStats();
}
