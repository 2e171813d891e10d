import { formatValue, maxOf, niceMax, pathData, scale, ticks, type Box } from "./chart-geometry.js";
import { el } from "./dom.js";
import type { SeriesSet } from "./series.js";

// A small SVG line chart of some lines of a SeriesSet over its window, with a
// legend holding each line's latest value. Colours come from style.css by the
// line's class (the page's CSP allows no inline style); the SVG is scaled by
// its viewBox, so the numbers below are in chart units, not pixels.

const SVG = "http://www.w3.org/2000/svg";
const BOX: Box = { width: 560, height: 160, left: 44, pad: 10 };

export interface LineSpec {
  /** The series' name in the set. */
  name: string;
  label: string;
  /** The CSS class that colours it (e.g. "c-email"). */
  cls: string;
}

export interface ChartOptions {
  title: string;
  /** Shown after each value in the legend ("/s", " s", ""). */
  unit: string;
  lines: LineSpec[];
  /** Legend text for a missing latest value. @defaultValue "–" */
  missing?: string;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export function lineChart(host: HTMLElement, opts: ChartOptions, series: SeriesSet) {
  const root = svg("svg", { viewBox: `0 0 ${BOX.width} ${BOX.height}`, role: "img", "aria-label": opts.title });
  const grid = svg("g", { class: "grid" });
  const paths = opts.lines.map((l) => svg("path", { class: `line ${l.cls}`, "data-series": l.name, d: "" }));
  root.append(grid, ...paths);
  const values = opts.lines.map(() => el("b", { class: "value" }));
  const legend = el(
    "ul",
    { class: "legend" },
    ...opts.lines.map((l, i) => el("li", { "data-series": l.name }, el("span", { class: `swatch ${l.cls}` }), `${l.label} `, values[i]!)),
  );
  host.replaceChildren(el("figure", { class: "chart" }, el("figcaption", {}, opts.title), root, legend));

  return {
    render() {
      const span = series.span();
      const lines = opts.lines.map((l) => series.points(l.name));
      const max = niceMax(maxOf(lines));
      grid.replaceChildren();
      if (!span) return;
      const s = scale(BOX, span, max);
      for (const tick of ticks(max)) {
        const y = s.y(tick);
        grid.append(svg("line", { x1: BOX.left, x2: BOX.width - BOX.pad, y1: y, y2: y }));
        const label = svg("text", { x: BOX.left - 6, y: y + 4, "text-anchor": "end" });
        label.textContent = formatValue(tick);
        grid.append(label);
      }
      opts.lines.forEach((l, i) => {
        paths[i]!.setAttribute("d", pathData(lines[i]!, s));
        const last = series.last(l.name);
        const value = values[i]!;
        const known = last !== undefined && Number.isFinite(last.v);
        value.textContent = known ? `${formatValue(last.v)}${opts.unit}` : (opts.missing ?? "–");
        value.dataset.value = known ? String(last.v) : "";
      });
    },
  };
}
