import { mkdir, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { gitCommit, machine } from "../bench/lib/environment.js";
import { stopAll } from "../test/support/processes.js";
import { FULL_PLAN, SHORT_PLAN } from "./faults.js";
import { formatReport } from "./report.js";
import { FAULT_ENV, runSoak } from "./soak.js";

// `npm run chaos [-- --short] [-- --rate 40] [-- --worker-kills 12] [-- --defaults]`
//
// The chaos soak (chaos/soak.ts) from the command line: prints progress and the report on
// stderr/stdout, writes chaos/results/<date>-<machine>.json (--short: -short.json, --defaults:
// -defaults.json), and exits 1 when the proof fails (lost, stuck, bad duplicates, INTERNAL,
// refusals, a role that exited by itself). The figures are reported, never a reason to fail.

const { values: args } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    rate: { type: "string" },
    "worker-kills": { type: "string" },
    defaults: { type: "boolean", default: false },
  },
});
const plan = { ...(args.short ? SHORT_PLAN : FULL_PLAN) };
if (args["worker-kills"]) plan.workerKills = Number(args["worker-kills"]);
const rate = Number(args.rate ?? (args.short ? 15 : 40));
if (!(rate > 0) || !(plan.workerKills >= 0)) {
  console.error("usage: npm run chaos -- [--short] [--rate N] [--worker-kills N] [--defaults]");
  process.exit(2);
}

// Ctrl-C: take every process of the soak down with us (processes.ts kills them on 'exit').
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

async function main(): Promise<void> {
  const started = new Date();
  const host = machine();
  const t0 = Date.now();
  const result = await runSoak({
    plan,
    ratePerSecond: rate,
    // --defaults: Herald's own session, heartbeat and lease, to compare with the fault settings.
    env: args.defaults ? {} : FAULT_ENV,
    terminalTimeoutMs: 300_000,
    log: (line) => console.error(`chaos: ${line}`),
  });
  const passed = result.proof.passed && result.crashes.length === 0;
  console.log(formatReport(result));
  const dir = new URL("../../chaos/results/", import.meta.url);
  await mkdir(dir, { recursive: true });
  const suffix = `${args.short ? "-short" : ""}${args.defaults ? "-defaults" : ""}`;
  const file = new URL(`${started.toISOString().slice(0, 10)}-${host.name}${suffix}.json`, dir);
  const record = { date: started.toISOString(), machine: host, commit: await gitCommit(new URL("../../", import.meta.url)), plan, passed, seconds: Math.round((Date.now() - t0) / 1000), ...result };
  await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
  console.error(`chaos: wrote ${file.pathname}`);
  process.exitCode = passed ? 0 : 1;
}

main()
  .catch((err: unknown) => {
    console.error("chaos: the soak could not run:", err);
    process.exitCode = 1;
  })
  .finally(() => stopAll("SIGKILL", 5000));
