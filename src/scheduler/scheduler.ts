import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import type { Logger } from "../log.js";
import type { SchedulerMetrics } from "../metrics/scheduler.js";
import { withStoreErrors } from "../store/errors.js";
import { systemClock, type Clock } from "../clock.js";
import { backoffMs } from "../loop/backoff.js";
import { createOutageLog } from "../loop/outage.js";
import { createWakeup } from "../loop/sleep.js";
import { createReleaser } from "./release.js";

// The scheduler's loop: read when the next row is due; when one is due now, release what is
// due (release.ts, which also ends claims whose worker is gone: stale-claims.ts); then sleep
// until the next row is due, at most pollMs. An idle wake-up costs that one read: the release
// transaction runs only for due rows, or once a sweepMs for stale claims. Several instances may
// run; SKIP LOCKED splits the due rows between them.

export interface SchedulerDeps {
  pool: pg.Pool;
  log: Logger;
  /** Rows of each kind (scheduled, retrying) released per transaction. */
  batchSize: number;
  /** Longest sleep between ticks; new rows due sooner than this are found at the next wake-up. */
  pollMs: number;
  /** @defaultValue systemClock */
  clock?: Clock;
  /**
   * A claim (SENDING) is presumed lost this long after its lease ended (HERALD_CLAIM_GRACE_MS).
   * The grace gives a live but slow worker's outcome, and the redelivered record's re-claim,
   * time to land first. @defaultValue 60000
   */
  claimGraceMs?: number;
  /** Released rows and their lag. */
  metrics?: SchedulerMetrics;
  /**
   * How often the release transaction runs with no row due, to end stale claims (whose grace
   * is a minute by default: a second's delay is nothing beside it). @defaultValue 1000
   */
  sweepMs?: number;
}

export interface Scheduler {
  start(): void;
  /** Stops the loop and waits for the tick in flight. Idempotent. */
  close(): Promise<void>;
  /** Releases one batch now; returns how many rows it released (for tests). */
  tick(): Promise<number>;
  /** Wake-ups of the loop, and how many of them ran the release transaction (for tests). */
  readonly loops: { wakeups: number; releases: number };
}

/** Shortest sleep when due rows exist but another instance holds them: no busy loop. */
const minSleepMs = 20;

/**
 * How long the loop sleeps after a batch that was not full: until the next due row, to the
 * millisecond (a burst due at one instant starts at that instant), at most pollMs; minSleepMs
 * when a row is due already, so another instance holds it. Due times have µs and a Date only
 * ms, and a timer may fire a little early: a row due within this millisecond waits 1 ms.
 */
export function sleepUntilDue(nextDue: Date | null, now: Date, pollMs: number): number {
  if (!nextDue) return pollMs;
  const wait = nextDue.getTime() - now.getTime();
  return Math.min(pollMs, wait >= 0 ? Math.max(1, Math.ceil(wait)) : minSleepMs);
}

/** Longest back-off while the database is failing. */
const maxBackoffMs = 5_000;

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { pool, log, batchSize, pollMs } = deps;
  const clock = deps.clock ?? systemClock;
  const claimGraceMs = deps.claimGraceMs ?? 60_000;
  let closed = false;
  let running: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  const wakeup = createWakeup();
  const { release, releaseDue } = createReleaser({ pool, log, clock, batchSize, claimGraceMs, metrics: deps.metrics });

  const sweepMs = deps.sweepMs ?? 1000;
  const loops = { wakeups: 0, releases: 0 };
  /** When the release transaction next runs with no row due (clock time); the first wake-up runs it. */
  let sweepAt = 0;

  /** When the next SCHEDULED or RETRYING row is due; null when there is none. */
  async function nextDue(): Promise<Date | null> {
    // Both subqueries read one end of a partial index.
    const result = await pool.query<{ next_due: Date | null }>(
      `SELECT LEAST(
         (SELECT min(deliver_at) FROM notifications WHERE status = $1),
         (SELECT min(next_attempt_at) FROM notifications WHERE status = $2)) AS next_due`,
      [Status.SCHEDULED, Status.RETRYING],
    );
    return result.rows[0]?.next_due ?? null;
  }

  /** Releases what is due, if anything is or stale claims are to be swept; then how long to sleep (sleepUntilDue). */
  async function step(): Promise<number> {
    let next = await withStoreErrors(nextDue);
    if ((next !== null && next.getTime() <= clock.now()) || clock.now() >= sweepAt) {
      loops.releases++;
      sweepAt = clock.now() + sweepMs;
      await releaseDue();
      next = await withStoreErrors(nextDue);
    }
    return sleepUntilDue(next, new Date(clock.now()), pollMs);
  }

  async function loop(): Promise<void> {
    // Logs the change of state, not every failed tick of an outage.
    const outage = createOutageLog(log, { down: "scheduler tick failed; backing off until the database answers", up: "scheduler recovered" }, clock);
    while (!closed) {
      let delay: number;
      loops.wakeups++;
      try {
        delay = await step();
        outage.succeeded();
      } catch (err) {
        delay = backoffMs(outage.failed(err), { baseMs: pollMs, capMs: maxBackoffMs });
      }
      if (delay > 0 && !closed) await wakeup.sleep(delay);
    }
  }

  return {
    start() {
      if (closed || running) return;
      running = loop();
    },
    close() {
      closing ??= (async () => {
        closed = true;
        wakeup.wake();
        await running;
      })();
      return closing;
    },
    async tick() {
      return (await release()).released;
    },
    loops,
  };
}
