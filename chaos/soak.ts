import { randomBytes } from "node:crypto";
import { waitFor } from "../test/support/wait.js";
import { runFaults, type FaultPlan } from "./faults.js";
import { computeFigures, type Figures } from "./figures.js";
import { startLoad, type Load } from "./load.js";
import { receiptsOf } from "./receipts.js";
import { startStack, type Stack } from "./stack.js";
import { createTimeline } from "./timeline.js";
import { prove, readRows, unfinished, type Proof } from "./verify.js";

// One chaos soak: start the stack, run the load, break things on schedule, stop the load, wait
// for every notification to be terminal, then prove nothing was lost, stuck or duplicated and
// compute the figures. `npm run chaos` (chaos/run.ts) and the CI test (test/chaos/soak.test.ts)
// both run this, with different numbers.

/** The fault settings the soak measures with (the issue's): a 3 s session, heartbeat 1 s, a 3 s send lease. */
export const FAULT_ENV: Record<string, string> = {
  HERALD_KAFKA_SESSION_TIMEOUT_MS: "3000",
  HERALD_KAFKA_HEARTBEAT_MS: "1000",
  HERALD_SEND_LEASE_MS: "3000",
};

export interface SoakOptions {
  plan: FaultPlan;
  ratePerSecond: number;
  /** Environment of every role on top of the soak's own (FAULT_ENV unless `--defaults`). */
  env: Record<string, string>;
  /** How long to wait for every notification to be terminal after the load stops. */
  terminalTimeoutMs: number;
  /** Progress lines (stderr for the CLI, the test's log). */
  log: (line: string) => void;
}

export interface SoakResult {
  proof: Proof;
  figures: Figures;
  conditions: Record<string, string | number>;
  /** Log tails of processes that exited by themselves (not killed by the soak): a crash is a finding. */
  crashes: { name: string; exit: string; tail: string }[];
}

const SCHEDULE_FRACTION = 0.2;
const SCHEDULE_LEAD_MS = 5000;
const CALL_TIMEOUT_MS = 5000;
const RECIPIENTS = 500;
/** The API and the worker's rate limiter are on the path (Redis), set far above the load. */
const RATE_LIMIT_SMS = "5000";

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const env = { HERALD_RATE_LIMIT_SMS: RATE_LIMIT_SMS, ...opts.env };
  opts.log(`starting: database, PostgreSQL proxy, Kafka broker, redis-server, Twilio stand-in, 5 role processes`);
  const stack = await startStack({ env });
  let load: Load | undefined;
  try {
    const timeline = createTimeline(opts.log);
    load = startLoad({
      client: stack.client,
      ratePerSecond: opts.ratePerSecond,
      scheduleFraction: SCHEDULE_FRACTION,
      scheduleLeadMs: SCHEDULE_LEAD_MS,
      callTimeoutMs: CALL_TIMEOUT_MS,
      recipients: RECIPIENTS,
      keyPrefix: `chaos-${randomBytes(4).toString("hex")}`,
    });
    const running = load;
    timeline.phase("warm-up");
    const delivered = () => receiptsOf(stack.standIn, running).filter((r) => r.acceptedAt !== undefined).length;
    await waitFor("two seconds' worth of deliveries", () => delivered() >= opts.ratePerSecond * 2, { timeoutMs: 180_000, everyMs: 100 });
    await runFaults(stack, load, opts.plan, timeline);

    opts.log("stopping the load; waiting for every notification to be terminal");
    await load.stop(120_000);
    const allTerminalAt = await waitForTerminal(stack, opts.terminalTimeoutMs);
    const rows = await readRows(stack.db.pool);
    const receipts = receiptsOf(stack.standIn, load);
    return {
      proof: prove(rows, load, receipts),
      figures: computeFigures(timeline, load, receipts, allTerminalAt),
      conditions: {
        ratePerSecond: opts.ratePerSecond,
        scheduleFraction: SCHEDULE_FRACTION,
        scheduleLeadMs: SCHEDULE_LEAD_MS,
        callTimeoutMs: CALL_TIMEOUT_MS,
        recipients: RECIPIENTS,
        smsWorkers: 2,
        topicPartitions: stack.site.env().HERALD_TOPIC_PARTITIONS ?? "",
        ...env,
      },
      crashes: crashes(stack),
    };
  } finally {
    await load?.stop(0);
    await stack.stop();
  }
}

/** The instant every row was terminal, or null when the wait ran out (the proof then names what is stuck). */
async function waitForTerminal(stack: Stack, timeoutMs: number): Promise<number | null> {
  try {
    await waitFor("every notification terminal", async () => unfinished(await readRows(stack.db.pool)).length === 0, { timeoutMs, everyMs: 250 });
    return Date.now();
  } catch {
    return null;
  }
}

/** Processes that exited without the soak killing them: the ones still current whose exit is set. */
function crashes(stack: Stack): SoakResult["crashes"] {
  return stack
    .all()
    .filter((p) => p.exit() && p.exit()!.signal !== "SIGKILL")
    .map((p) => ({ name: p.name, exit: JSON.stringify(p.exit()), tail: p.stdout().slice(-2000) + p.stderr().slice(-1000) }));
}
