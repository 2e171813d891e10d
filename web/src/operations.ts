import { ConnectError } from "@connectrpc/connect";
import type { Clients } from "./client.js";
import { byId, el, timeText } from "./dom.js";
import { codeName, sleep } from "./feed.js";
import { lineChart } from "./line-chart.js";
import { figures, recordFigures, type ChannelFigures, type OverviewFigures } from "./overview.js";
import { startPolling } from "./poll.js";
import { seriesSet } from "./series.js";

// The operations view: GetOverview polled every 2 s while the view is shown,
// five minutes of its points kept in the page (so leaving the view and coming
// back keeps the picture, with a gap), drawn as line charts, and the latest
// snapshot as figures and tables (lag per partition as
// `kafka-consumer-groups --describe` shows it).

const EVERY_MS = 2000;
const WINDOW_MS = 5 * 60_000;
const CHANNELS = ["email", "sms", "push", "webhook"] as const;
const perChannel = (figure: string) => CHANNELS.map((c) => ({ name: `${figure}.${c}`, label: c, cls: `c-${c}` }));

/** 0.042 → "42 ms", 3.5 → "3.5 s", 200 → "3 m 20 s"; NaN → "–". */
export function durationText(s: number): string {
  if (!Number.isFinite(s)) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${Math.round(s * 10) / 10} s`;
  return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
}

const rate = (v: number) => (Math.round(v * 100) / 100).toString();

/** "twilio closed · vonage open (12 s)", each provider marked with its breaker's state; "–" with one provider. */
function circuitCells(c: ChannelFigures): Array<Node | string> {
  if (c.circuits.length === 0) return [el("span", { class: "muted" }, "–")];
  return c.circuits.flatMap((k, i) => [
    ...(i > 0 ? [" · "] : []),
    el(
      "span",
      { class: `circuit circuit-${k.state}`, "data-provider": k.provider, "data-state": k.state },
      `${k.provider} ${k.state}${k.state === "open" && k.retryInSeconds > 0 ? ` (probe in ${durationText(k.retryInSeconds)})` : ""}`,
    ),
  ]);
}

export function operationsView(clients: () => Clients | undefined) {
  const state = byId("ops-state");
  const lagState = byId("ops-lag-state");
  const tiles = byId("ops-tiles");
  const channelRows = byId<HTMLTableSectionElement>("ops-channel-rows");
  const partitionRows = byId<HTMLTableSectionElement>("ops-partition-rows");
  let series = seriesSet(WINDOW_MS);
  let charts: Array<{ render(): void }> = [];
  let poll: { stop(): void } | undefined;

  function buildCharts() {
    charts = [
      lineChart(byId("chart-sent"), { title: "Deliveries/s (SENT, last minute's rate)", unit: "/s", lines: perChannel("sent") }, series),
      lineChart(byId("chart-failed"), { title: "Failures/s (FAILED + DEAD_LETTERED, last minute's rate)", unit: "/s", lines: perChannel("failed") }, series),
      lineChart(byId("chart-lag"), { title: "Consumer lag (records)", unit: "", lines: perChannel("lag"), missing: "unavailable" }, series),
      lineChart(byId("chart-p99"), { title: "p99 accept → SENT (s, last 5 min)", unit: " s", lines: perChannel("p99") }, series),
      lineChart(byId("chart-outbox"), { title: "Outbox backlog (rows)", unit: "", lines: [{ name: "outbox.pending", label: "pending", cls: "c-outbox" }] }, series),
      lineChart(byId("chart-outbox-age"), { title: "Oldest outbox row (s)", unit: " s", lines: [{ name: "outbox.oldest", label: "age", cls: "c-age" }] }, series),
    ];
  }
  buildCharts();

  function tile(name: string, label: string, value: string, href?: string) {
    const attrs = { class: "tile", "data-figure": name };
    const parts = [el("span", { class: "muted" }, label), el("b", {}, value)];
    return href ? el("a", { ...attrs, href }, ...parts) : el("div", attrs, ...parts);
  }

  function show(f: OverviewFigures) {
    recordFigures(series, f);
    for (const c of charts) c.render();
    state.dataset.state = "live";
    state.textContent = `updated ${timeText(new Date(f.at))}`;
    lagState.dataset.state = f.lagAvailable ? "ok" : "unavailable";
    lagState.textContent = f.lagAvailable ? "" : "lag unavailable: Kafka did not answer";
    const totalLag = f.channels.reduce((sum, c) => sum + c.lag, 0);
    tiles.replaceChildren(
      tile("lag", "consumer lag", f.lagAvailable ? String(totalLag) : "unavailable"),
      tile("outbox-pending", "outbox pending", String(f.outboxPending)),
      tile("outbox-oldest", "oldest outbox row", durationText(f.outboxOldestSeconds)),
      tile("due", "due, not released", String(f.dueUnreleased)),
      tile("due-oldest", "oldest due", durationText(f.dueOldestSeconds)),
      // Every tenant's count; the view it links to lists this key's tenant only.
      tile("dead-letters", "dead letters open", String(f.deadLettersOpen), "#dead-letters"),
    );
    channelRows.replaceChildren(
      ...f.channels.map((c) =>
        el(
          "tr",
          { "data-channel": c.channel },
          el("td", {}, el("span", { class: `swatch c-${c.channel}` }), c.channel),
          el("td", { class: "muted" }, c.group),
          el("td", { class: "num", "data-field": "lag" }, f.lagAvailable ? String(c.lag) : "unavailable"),
          el("td", { class: "num", "data-field": "sent" }, rate(c.sentPerSecond)),
          el("td", { class: "num", "data-field": "failed" }, rate(c.failedPerSecond)),
          el("td", { class: "num", "data-field": "p50" }, durationText(c.p50Seconds)),
          el("td", { class: "num", "data-field": "p99" }, durationText(c.p99Seconds)),
          el("td", { class: "num", "data-field": "samples" }, String(c.samples)),
          el("td", { "data-field": "circuits" }, ...circuitCells(c)),
        ),
      ),
    );
    const partitions = f.channels.flatMap((c) =>
      c.partitions.map((p) =>
        el(
          "tr",
          { "data-channel": c.channel, "data-lane": p.lane, "data-partition": String(p.partition) },
          el("td", {}, p.lane === "high" ? `${c.channel} (high)` : c.channel),
          el("td", { class: "num" }, String(p.partition)),
          el("td", { class: "num" }, String(p.logEndOffset)),
          el("td", { class: "num" }, p.committedOffset < 0n ? "–" : String(p.committedOffset)),
          el("td", { class: "num", "data-field": "lag" }, String(p.lag)),
        ),
      ),
    );
    if (!f.lagAvailable) partitions.push(el("tr", { class: "empty" }, el("td", { colspan: "5", class: "muted" }, "lag unavailable: Kafka did not answer")));
    partitionRows.replaceChildren(...partitions);
  }

  function showError(err: unknown) {
    const e = ConnectError.from(err);
    state.dataset.state = "error";
    state.dataset.code = codeName(e.code);
    state.textContent = `${codeName(e.code)}: ${e.rawMessage} (trying again every ${EVERY_MS / 1000} s)`;
  }

  return {
    /** Shown: poll until hidden. */
    start() {
      const c = clients();
      if (!c || poll) return;
      state.dataset.state = "connecting";
      state.textContent = "reading…";
      poll = startPolling({
        call: (signal) => c.operations.getOverview({}, { signal }),
        onResult: (o) => show(figures(o)),
        onError: showError,
        everyMs: EVERY_MS,
        sleep,
      });
    },
    stop() {
      poll?.stop();
      poll = undefined;
    },
    /** A new API key: a new picture. */
    reset() {
      this.stop();
      series = seriesSet(WINDOW_MS);
      buildCharts();
    },
  };
}
