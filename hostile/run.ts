import { mkdir, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { gitCommit, machine } from "../bench/lib/environment.js";
import { stopAll } from "../test/support/processes.js";
import { runHostile, type HostileResult } from "./suite.js";

// `npm run hostile [-- --short]`: the hostile-input suite from the command line. Prints each
// attack's outcomes and the verdict, writes hostile/results/<date>-<machine>[-short].json, and
// exits 1 when the verdict fails (an INTERNAL, a hang, a crash, an outcome an attack does not
// accept, a probe call that failed). RSS and the probe's latency are reported, not judged.

const { values: args } = parseArgs({ options: { short: { type: "boolean", default: false } } });
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

function report(r: HostileResult): string {
  const lines: string[] = [];
  for (const [name, a] of Object.entries(r.attacks)) {
    lines.push(`${name}: ${Object.entries(a.outcomes).map(([o, n]) => `${o} ${n}`).join(", ")}`);
    if (a.notAccepted > 0) lines.push(`  ${a.notAccepted} not accepted, e.g.:`);
    for (const f of a.failures) lines.push(`    ${f.outcome}: ${f.what}`);
  }
  lines.push(
    "",
    `INTERNAL ${r.internal} (target 0), hangs ${r.hangs} (target 0), crashed: ${r.crashed ? "YES" : "no"}`,
    `probe: ${r.probe.ok}/${r.probe.calls} answered OK, p50 ${r.probe.p50Ms} ms, p99 ${r.probe.p99Ms} ms (target < 100), max ${r.probe.maxMs} ms${Object.keys(r.probe.failed).length ? `, failed ${JSON.stringify(r.probe.failed)}` : ""}`,
    `server RSS: warm ${r.rssMiB.warm} MiB, peak ${r.rssMiB.peak} MiB, after ${r.rssMiB.after} MiB (target: within 50 MiB of warm)`,
    `verdict: ${r.passed ? "PASSED" : "FAILED"}`,
  );
  return lines.join("\n");
}

async function main(): Promise<void> {
  const started = new Date();
  const result = await runHostile({
    scale: args.short ? 0.1 : 1,
    // How long a flood may take to be freed: the timeouts are 5–10 s; the rest is room for a busy machine.
    floodWaitMs: 40_000,
    log: (line) => console.error(`hostile: ${line}`),
  });
  console.log(report(result));
  const dir = new URL("../../hostile/results/", import.meta.url);
  await mkdir(dir, { recursive: true });
  const file = new URL(`${started.toISOString().slice(0, 10)}-${machine().name}${args.short ? "-short" : ""}.json`, dir);
  await writeFile(file, `${JSON.stringify({ date: started.toISOString(), machine: machine(), commit: await gitCommit(new URL("../../", import.meta.url)), ...result }, null, 2)}\n`);
  console.error(`hostile: wrote ${file.pathname}`);
  process.exitCode = result.passed ? 0 : 1;
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
