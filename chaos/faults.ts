import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "../test/support/wait.js";
import type { Load } from "./load.js";
import { firstFreshReceipt, receiptsOf } from "./receipts.js";
import type { Member, Stack } from "./stack.js";
import type { Timeline } from "./timeline.js";

// The fault schedule. Each fault is held for a set time (that is the fault), and before the next
// one the soak waits until delivery has moved new work end to end again, so every fault hits a
// pipeline that is running, however slow the machine, and none hides inside another's recovery.

export interface FaultPlan {
  /** Phase 1: SIGKILLs of one of the two workers (alternating), one every `workerKillEveryMs`, each restarted at once. */
  workerKills: number;
  workerKillEveryMs: number;
  /** Phase 3: how long the broker stays down between its stop and its start. */
  brokerDownMs: number;
  /** Phase 4: how long Redis stays down. */
  redisDownMs: number;
  /** Phase 5: PostgreSQL refused (the proxy closed). */
  pgRefuseMs: number;
  /** Phase 6: PostgreSQL blackholed (packets dropped). */
  pgBlackholeMs: number;
}

/** `npm run chaos`: about five minutes of faults. */
export const FULL_PLAN: FaultPlan = {
  workerKills: 12,
  workerKillEveryMs: 5000,
  brokerDownMs: 10_000,
  redisDownMs: 20_000,
  pgRefuseMs: 10_000,
  pgBlackholeMs: 15_000,
};

/** The CI form: every kind of fault once, briefly. */
export const SHORT_PLAN: FaultPlan = {
  workerKills: 1,
  workerKillEveryMs: 5000,
  brokerDownMs: 3000,
  redisDownMs: 5000,
  pgRefuseMs: 4000,
  pgBlackholeMs: 5000,
};

/** How long recovery from one fault may take before the soak gives up (a hang, not a slow machine). */
const RECOVERY_TIMEOUT_MS = 180_000;

export async function runFaults(stack: Stack, load: Load, plan: FaultPlan, timeline: Timeline): Promise<void> {
  const recovered = (what: string) => deliveringAgain(stack, load, what);

  timeline.phase("worker kills");
  const workers: Member[] = ["worker-1", "worker-2"];
  for (let i = 0; i < plan.workerKills; i++) {
    const started = Date.now();
    await timeline.fault(`SIGKILL ${workers[i % 2]}`, () => stack.kill(workers[i % 2]!));
    await sleep(Math.max(0, started + plan.workerKillEveryMs - Date.now()));
  }
  await Promise.all(workers.map((w) => stack.started(w)));
  await recovered("after the worker kills");

  timeline.phase("role kills");
  for (const member of ["server", "relay", "scheduler"] as const) {
    await timeline.fault(`SIGKILL ${member}`, async () => {
      await stack.kill(member);
      await stack.started(member);
    });
    await recovered(`after the ${member} kill`);
  }

  // A dependency taken away for `ms`, and given back whatever happens meanwhile.
  const outage = (name: string, ms: number, take: () => Promise<void> | void, giveBack: () => Promise<void>) =>
    timeline.fault(name, async () => {
      await take();
      try {
        await sleep(ms);
      } finally {
        await giveBack();
      }
    });

  timeline.phase("broker restart");
  // Its end is the broker's start returning: the broker serves clients again.
  await outage("broker down", plan.brokerDownMs, () => stack.broker.stop(), () => stack.broker.start());
  await recovered("after the broker restart");

  timeline.phase("redis outage");
  await outage("redis down", plan.redisDownMs, () => stack.redis.stop(), () => stack.redis.start());
  await recovered("after the redis outage");

  timeline.phase("postgresql refused");
  await outage("postgresql refused", plan.pgRefuseMs, () => stack.pgProxy.cut(), () => stack.pgProxy.restore());
  await recovered("after postgresql refused");

  timeline.phase("postgresql blackholed");
  await outage("postgresql blackholed", plan.pgBlackholeMs, () => stack.pgProxy.blackhole(), () => stack.pgProxy.restore());
  timeline.close();
}

/** Waits until the stand-in receives a notification accepted after this call: new work flows end to end. */
async function deliveringAgain(stack: Stack, load: Load, what: string): Promise<void> {
  const since = Date.now();
  await waitFor(`delivery of new notifications ${what}`, () => firstFreshReceipt(receiptsOf(stack.standIn, load), since, since), {
    timeoutMs: RECOVERY_TIMEOUT_MS,
    everyMs: 100,
  });
}
