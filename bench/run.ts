import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { latencyChart, throughputChart } from "./lib/charts.js";
import { gitCommit, machine, versions } from "./lib/environment.js";
import { createProgress } from "./lib/progress.js";
import { toMarkdown, type RunReport } from "./lib/report.js";
import type { ScenarioResult } from "./lib/result.js";
import { downsample } from "./lib/stats.js";
import { startOtlpStandIn } from "./lib/otlp.js";
import { scenarios } from "./scenarios/index.js";

// `npm run bench [-- --quick] [-- --only ceilings,create] [-- --publish|--no-publish] [-- --otlp]`
//
// --otlp: every Herald process exports traces to an OTLP collector stand-in (bench/lib/otlp.ts);
// its results are written under a name of their own (-otlp), beside the run without tracing.
// Runs the scenarios of bench/scenarios/index.ts one after another against the real stack,
// draws progress on stderr, and writes bench/results/<date>-<machine>.json (quick runs:
// <date>-<machine>-quick.json, --only runs -only-<ids>.json), a markdown summary beside it and PNG charts in a folder of
// the same name. A full run of every scenario also publishes itself as docs/benchmarks.md
// (charts copied to docs/img/bench/); --publish forces that, --no-publish prevents it.
// A scenario that throws is recorded with its error; the others still run.

const root = new URL("../../", import.meta.url);
const resultsDir = new URL("bench/results/", root);
const docsPage = new URL("docs/benchmarks.md", root);
const docsImages = new URL("docs/img/bench/", root);
const BEGIN = "<!-- bench:results:begin (written by bench/run.ts; edit outside these markers) -->";
const END = "<!-- bench:results:end -->";
/** Samples kept per latency series in the JSON: enough for a distribution, small in git. */
const JSON_SAMPLES = 2000;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    publish: { type: "boolean" },
    "no-publish": { type: "boolean", default: false },
    otlp: { type: "boolean", default: false },
  },
});
const quick = args.quick;
const only = args.only?.split(",").map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((id) => !scenarios.some((s) => s.id === id)) ?? [];
if (unknown.length) {
  console.error(`unknown scenario(s): ${unknown.join(", ")}; known: ${scenarios.map((s) => s.id).join(", ")}`);
  process.exit(2);
}
const chosen = only ? scenarios.filter((s) => only.includes(s.id)) : scenarios;
const publish = args.publish ?? (!args["no-publish"] && !quick && !only && !args.otlp);
const timeoutSeconds = Number(process.env.BENCH_SCENARIO_TIMEOUT_S ?? (quick ? 150 : 1800));

function invocation(): string {
  const rest = process.argv.slice(2).join(" ");
  return process.env.npm_lifecycle_event === "bench" ? `npm run bench${rest ? ` -- ${rest}` : ""}` : `node dist/bench/run.js ${rest}`.trim();
}

function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${seconds} s (BENCH_SCENARIO_TIMEOUT_S)`)), seconds * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main(): Promise<void> {
  const started = new Date();
  const progress = createProgress();
  const host = machine();
  const runId = started.getTime().toString(36);
  progress.log(`bench: ${chosen.map((s) => s.id).join(", ")}${quick ? " (quick)" : ""} on ${host.name} (${host.cores} cores, ${host.memoryGiB} GiB)`);

  const report: RunReport = {
    date: started.toISOString(),
    machine: host,
    versions: await versions(root),
    commit: await gitCommit(root),
    command: invocation(),
    quick,
    durations: {},
    results: [],
    failures: [],
    charts: {},
  };

  const otlp = args.otlp ? await startOtlpStandIn(process.env) : undefined;
  for (const [i, entry] of chosen.entries()) {
    const ctx = { quick, runId: `${runId}${i}`, progress: progress.begin(entry.id, i + 1, chosen.length) };
    const t0 = performance.now();
    try {
      const scenario = await entry.load();
      const result = await withTimeout(scenario(ctx), timeoutSeconds, `scenario ${entry.id}`);
      report.results.push(result);
      progress.end("done");
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      report.failures.push({ id: entry.id, error });
      progress.end(`FAILED: ${error.split("\n")[0]}`);
    }
    report.durations[entry.id] = Math.round((performance.now() - t0) / 100) / 10;
  }

  if (otlp) {
    progress.log(otlp.summary());
    await otlp.close();
  }

  // A partial or quick run never overwrites the full run's record of the same day.
  const stem = `${started.toISOString().slice(0, 10)}-${host.name}${quick ? "-quick" : ""}${only ? `-only-${chosen.map((s) => s.id).join("+")}` : ""}${otlp ? "-otlp" : ""}`;
  const chartDir = new URL(`${stem}/`, resultsDir);
  await rm(chartDir, { recursive: true, force: true });
  await mkdir(chartDir, { recursive: true });
  for (const r of report.results) await drawCharts(r, report, stem, chartDir).catch((err: unknown) => progress.log(`charts for ${r.id} failed: ${String(err)}`));

  const json = new URL(`${stem}.json`, resultsDir);
  const md = new URL(`${stem}.md`, resultsDir);
  const slim: RunReport = {
    ...report,
    results: report.results.map((r) => ({
      ...r,
      // Microsecond precision is all the clocks give; more digits only grow the file.
      latencies: r.latencies?.map((s) => ({ name: s.name, samplesMs: downsample(s.samplesMs, JSON_SAMPLES).map((x) => Math.round(x * 1000) / 1000) })),
    })),
  };
  // Indented for diffs, but arrays of numbers on one line each (a newline right after "[" is
  // never inside a JSON string, so strings are left alone).
  const text = JSON.stringify(slim, null, 1).replace(/\[\n[\d\s.,eE+-]*\]/g, (a) => a.replace(/\s+/g, ""));
  await writeFile(json, `${text}\n`);
  await writeFile(md, `${toMarkdown(report, { imagePrefix: "" })}\n`);
  progress.log(`wrote ${rel(json)}, ${rel(md)} and ${rel(chartDir)}`);

  if (publish) {
    await publishToDocs(report, chartDir);
    progress.log(`published to ${rel(docsPage)} (charts in ${rel(docsImages)})`);
  }
  const targets = report.results.flatMap((r) => r.targets ?? []);
  progress.log(
    `${report.results.length} scenario(s) done, ${report.failures.length} failed; targets met: ${targets.filter((t) => t.met).length}/${targets.length}`,
  );
  if (report.failures.length) process.exitCode = 1;
}

const rel = (u: URL) => u.pathname.slice(root.pathname.length);

/** Draws the scenario's charts into the run's folder; records their paths (relative to results/). */
async function drawCharts(r: ScenarioResult, report: RunReport, stem: string, dir: URL): Promise<void> {
  const charts: RunReport["charts"][string] = {};
  if (r.latencies?.length) {
    await writeFile(new URL(`${r.id}-latency.png`, dir), await latencyChart(`${r.title}: latency by percentile`, r.latencies));
    charts.latency = `${stem}/${r.id}-latency.png`;
  }
  if (r.timeseries?.length) {
    await writeFile(new URL(`${r.id}-throughput.png`, dir), await throughputChart(`${r.title}: throughput over time`, r.timeseries));
    charts.throughput = `${stem}/${r.id}-throughput.png`;
  }
  report.charts[r.id] = charts;
}

/** Replaces the marked region of docs/benchmarks.md with this run and its charts. */
async function publishToDocs(report: RunReport, chartDir: URL): Promise<void> {
  await rm(docsImages, { recursive: true, force: true });
  await mkdir(docsImages, { recursive: true });
  for (const file of await readdir(chartDir)) await copyFile(new URL(file, chartDir), new URL(file, docsImages));
  // In docs the charts sit flat in img/bench/, so drop the run folder from their paths.
  const charts = Object.fromEntries(
    Object.entries(report.charts).map(([id, c]) => [id, { latency: c.latency?.replace(/^.*\//, ""), throughput: c.throughput?.replace(/^.*\//, "") }]),
  );
  const body = toMarkdown({ ...report, charts }, { imagePrefix: "img/bench/", level: 3 });
  const page = await readFile(docsPage, "utf8").catch(() => `# Benchmarks\n\n${BEGIN}\n${END}\n`);
  const [head, rest] = page.split(BEGIN);
  const tail = rest?.split(END)[1];
  if (head === undefined || tail === undefined) throw new Error(`${rel(docsPage)} lacks the markers ${BEGIN} … ${END}`);
  await writeFile(docsPage, `${head}${BEGIN}\n${body}\n${END}${tail}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
