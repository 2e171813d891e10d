import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { LatencySeries, TimeSeries } from "./result.js";
import { quantile } from "./stats.js";

// Charts as PNG, drawn headlessly: a Vega-Lite spec compiled to Vega, rendered to SVG with no
// DOM (renderer "none"), rasterised by resvg. No browser, nothing fetched at run time.

const WIDTH = 640;

/**
 * Latency by percentile, one line per series: x is the percentile on a "nines" log scale
 * (50%, 90%, 99%, 99.9%...), y the latency on a log scale, so the tail is as visible as the median.
 * Each line stops at the deepest percentile its sample count can resolve.
 */
export async function latencyChart(title: string, series: readonly LatencySeries[]): Promise<Buffer> {
  const values = series.flatMap((s) => {
    const sorted = [...s.samplesMs].sort((a, b) => a - b);
    const points: Array<{ series: string; nines: number; ms: number }> = [];
    for (let k = 0; k <= 150; k++) {
      const nines = 10 ** (k / 30);
      if (nines > sorted.length) break;
      // Latencies of 0 (sub-microsecond clocks) cannot sit on a log axis.
      points.push({ series: s.name, nines, ms: Math.max(0.001, quantile(sorted, 1 - 1 / nines)) });
    }
    return points;
  });
  return render({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: WIDTH,
    height: 320,
    data: { values },
    mark: { type: "line", strokeWidth: 1.5, clip: true },
    encoding: {
      x: {
        field: "nines",
        type: "quantitative",
        title: "percentile",
        scale: { type: "log", domain: [1, 10_000] },
        axis: { values: [1, 2, 10, 100, 1000, 10_000], labelExpr: "datum.value == 1 ? 'min' : format(100 - 100 / datum.value, '.4~f') + '%'" },
      },
      y: { field: "ms", type: "quantitative", title: "latency (ms, log)", scale: { type: "log" } },
      color: colors(series.length),
    },
    config: { legend: { orient: "bottom", columns: 1, labelLimit: 600 } },
  });
}

/** Throughput over time, one line per series, one panel per unit (req/s, rows/s...). */
export async function throughputChart(title: string, series: readonly TimeSeries[]): Promise<Buffer> {
  const values = series.flatMap((s) => s.points.map(([t, v]) => ({ series: s.name, unit: s.unit, t, v })));
  const units = new Set(series.map((s) => s.unit));
  const line: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    data: { values },
    spec: {
      width: WIDTH,
      height: units.size > 1 ? 160 : 280,
      mark: { type: "line", strokeWidth: 1.5 },
      encoding: {
        x: { field: "t", type: "quantitative", title: "seconds since the series started" },
        y: { field: "v", type: "quantitative", title: "per second" },
        color: colors(series.length),
      },
    },
    facet: { row: { field: "unit", type: "nominal", title: null } },
    resolve: { scale: { y: "independent" } },
    config: { legend: { orient: "bottom", columns: 1, labelLimit: 600 } },
  };
  return render(line);
}

/** Ten clearly distinct hues while they suffice; tableau20 (light/dark pairs) beyond. */
const colors = (n: number) =>
  ({ field: "series", type: "nominal", title: null, scale: { scheme: n <= 10 ? "category10" : "tableau20" } }) as const;

async function render(spec: TopLevelSpec): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return new Resvg(svg, { background: "white", fitTo: { mode: "zoom", value: 1.25 }, font: { loadSystemFonts: true } })
    .render()
    .asPng();
}
