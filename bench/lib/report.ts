import type { Machine, Versions } from "./environment.js";
import type { Figure, ScenarioResult } from "./result.js";

// The run as written to bench/results/<date>-<machine>.json, and its markdown summary (the same
// text, with other image paths, is what docs/benchmarks.md shows).

export interface RunReport {
  /** ISO time the run started. */
  date: string;
  machine: Machine;
  versions: Versions;
  commit: string;
  /** How the run was started, e.g. "node dist/bench/run.js --quick". */
  command: string;
  quick: boolean;
  /** Seconds each scenario took, by id. */
  durations: Record<string, number>;
  results: ScenarioResult[];
  /** Scenarios that threw: their error, so a partial run still says what is missing and why. */
  failures: Array<{ id: string; error: string }>;
  /** Chart files per scenario id, relative to the results folder. */
  charts: Record<string, { latency?: string; throughput?: string }>;
}

const num = (n: number | undefined, digits = 2) =>
  n === undefined || Number.isNaN(n) ? "" : n.toLocaleString("en", { maximumFractionDigits: digits });
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function figureTable(figures: readonly Figure[]): string[] {
  const rows = figures.map((f) => {
    const l = f.latency;
    const extra = Object.entries(f.extra ?? {})
      .map(([k, v]) => `${k}: ${typeof v === "number" ? num(v) : v}`)
      .join("; ");
    return `| ${cell(f.name)} | ${f.throughput ? `${num(f.throughput.value, 0)} ${f.throughput.unit}` : ""} | ${num(l?.p50)} | ${num(l?.p95)} | ${num(l?.p99)} | ${num(l?.max)} | ${num(f.errors, 0)} | ${cell(extra)} |`;
  });
  return ["| measurement | throughput | p50 ms | p95 ms | p99 ms | max ms | errors | details |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |", ...rows];
}

function scenarioSection(r: ScenarioResult, charts: RunReport["charts"][string] | undefined, imagePrefix: string, h: string): string[] {
  const out = [`${h} ${r.title}`, "", `Command: \`${r.command}\``, "", `Method: ${r.method}`, "", ...figureTable(r.figures), ""];
  if (r.ratios?.length) {
    out.push("| ratio | value | Herald | reference |", "| --- | ---: | ---: | ---: |");
    for (const x of r.ratios) out.push(`| ${cell(x.name)} | ${(x.value * 100).toFixed(1)}% | ${cell(x.herald)} | ${cell(x.reference)} |`);
    out.push("");
  }
  if (r.targets?.length) {
    out.push("| target | goal | this run | |", "| --- | --- | --- | :---: |");
    for (const t of r.targets) out.push(`| ${cell(t.name)} | ${cell(t.target)} | ${cell(t.actual)} | ${t.met ? "✅" : "❌"} |`);
    out.push("");
  }
  if (r.notes?.length) out.push(...r.notes.map((n) => `- ${n}`), "");
  if (charts?.latency) out.push(`![${r.title}: latency by percentile](${imagePrefix}${charts.latency})`, "");
  if (charts?.throughput) out.push(`![${r.title}: throughput over time](${imagePrefix}${charts.throughput})`, "");
  return out;
}

/**
 * The summary in markdown. `imagePrefix` is where the chart files are as seen from the page;
 * `level` the heading level of the run's title (sections are one deeper).
 */
export function toMarkdown(run: RunReport, opts: { imagePrefix: string; level?: number }): string {
  const h = "#".repeat(opts.level ?? 1);
  const m = run.machine;
  const out = [
    `${h} Herald benchmarks, ${run.date.slice(0, 10)} on ${m.name}${run.quick ? " (quick run)" : ""}`,
    "",
    `Command: \`${run.command}\` at commit \`${run.commit}\`.`,
    "",
    "| machine | |",
    "| --- | --- |",
    `| cores | ${m.cores} |`,
    `| CPU | ${cell(m.cpu)} |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| OS | ${cell(m.os)} |`,
    "",
    "| component | version |",
    "| --- | --- |",
    ...Object.entries(run.versions).map(([k, v]) => `| ${cell(k)} | ${cell(v)} |`),
    "",
  ];
  if (run.quick) out.push("> A quick run: short durations and fewer levels, to check the harness. Its figures are indicative only.", "");
  if (run.failures.length) {
    out.push(`${h}# Scenarios that failed`, "");
    for (const f of run.failures) out.push(`- \`${f.id}\`: ${cell(f.error.split("\n")[0] ?? "")}`);
    out.push("");
  }
  for (const r of run.results) out.push(...scenarioSection(r, run.charts[r.id], opts.imagePrefix, `${h}#`));
  return out.join("\n");
}
