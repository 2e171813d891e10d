import type { Page } from "playwright-core";

// What the operations test reads from the dashboard's operations view
// (web/index.html, #operations): the state line, the figure tiles, the
// per-channel table, the per-partition table and the charts' latest values.

export interface ChannelRow {
  lag: string;
  sent: string;
  p99: string;
  samples: string;
}

export function operationsPage(page: Page) {
  return {
    async open(baseUrl: string, apiKey: string) {
      await page.goto(`${baseUrl}/#operations`);
      await page.fill("#api-key", apiKey);
      await page.click("#key-form button[type=submit]");
    },
    /** "live" once an answer arrived, "error" (with the code) when the last call failed. */
    async state() {
      const s = page.locator("#ops-state");
      return { state: (await s.getAttribute("data-state")) ?? "", text: (await s.textContent()) ?? "" };
    },
    /** The tiles' values by figure name (lag, outbox-pending, …). */
    async tiles(): Promise<Record<string, string>> {
      return page.$$eval("#ops-tiles .tile", (tiles) => Object.fromEntries(tiles.map((t) => [t.getAttribute("data-figure") ?? "", t.querySelector("b")?.textContent ?? ""])));
    },
    async channel(name: string): Promise<ChannelRow | undefined> {
      return page.$$eval(
        "#ops-channel-rows tr",
        (trs, wanted) => {
          const tr = trs.find((t) => t.getAttribute("data-channel") === wanted);
          if (!tr) return undefined;
          const f = (field: string) => tr.querySelector(`td[data-field="${field}"]`)?.textContent ?? "";
          return { lag: f("lag"), sent: f("sent"), p99: f("p99"), samples: f("samples") };
        },
        name,
      );
    },
    /** The providers column of a channel's row: each provider's breaker as shown. */
    async circuits(channel: string): Promise<Array<{ provider: string; state: string; text: string }>> {
      return page.$$eval(
        "#ops-channel-rows tr",
        (trs, wanted) => {
          const tr = trs.find((t) => t.getAttribute("data-channel") === wanted);
          return Array.from(tr?.querySelectorAll('td[data-field="circuits"] .circuit') ?? []).map((s) => ({
            provider: s.getAttribute("data-provider") ?? "",
            state: s.getAttribute("data-state") ?? "",
            text: s.textContent ?? "",
          }));
        },
        channel,
      );
    },
    /** Lag per partition of one channel's lane (the main one unless told), as the table shows it. */
    async partitions(channel: string, lane: "main" | "high" = "main"): Promise<Array<{ partition: number; lag: number }>> {
      return page.$$eval(
        "#ops-partition-rows tr[data-partition]",
        (trs, wanted) =>
          trs
            .filter((t) => t.getAttribute("data-channel") === wanted.channel && t.getAttribute("data-lane") === wanted.lane)
            .map((t) => ({ partition: Number(t.getAttribute("data-partition")), lag: Number(t.querySelector('td[data-field="lag"]')?.textContent) })),
        { channel, lane },
      );
    },
    /**
     * One line of a chart: its latest value (the legend's raw number, undefined
     * when missing), the legend text, and how many points its path draws.
     */
    async line(chart: string, series: string) {
      return page.$eval(
        `#${chart}`,
        (host, name) => {
          const value = host.querySelector(`.legend li[data-series="${name}"] .value`);
          const d = host.querySelector(`path[data-series="${name}"]`)?.getAttribute("d") ?? "";
          const raw = value?.getAttribute("data-value") ?? "";
          return { value: raw === "" ? undefined : Number(raw), text: value?.textContent ?? "", points: (d.match(/[ML]/g) ?? []).length };
        },
        series,
      );
    },
    async lagWarning() {
      const w = page.locator("#ops-lag-state");
      return { state: (await w.getAttribute("data-state")) ?? "", text: (await w.textContent()) ?? "" };
    },
  };
}

export type OperationsPage = ReturnType<typeof operationsPage>;
