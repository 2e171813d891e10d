import type pg from "pg";
import { systemClock, type Clock } from "../clock.js";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { backoffMs } from "../loop/backoff.js";
import { createOutageLog } from "../loop/outage.js";
import { createWakeup, sleep } from "../loop/sleep.js";
import { createHousekeeping } from "./housekeeping.js";
import { createLeadership, RELAY_LOCK_KEY } from "./leadership.js";
import { createPublisher, PublishError, type RecordSink } from "./publish.js";

// The outbox relay: the loop that moves committed outbox rows to Kafka, oldest first, while
// this relay leads (leadership.ts), batch by batch (publish.ts), woken by the NOTIFY of each
// commit with polling as a safety net, backing off while Kafka fails.

export interface RelayDeps {
  pool: pg.Pool;
  producer: RecordSink;
  log: Logger;
  /** Rows per batch. */
  batchSize: number;
  /** Safety net: look for rows this often even without a NOTIFY. */
  pollMs: number;
  /** @defaultValue Date */
  clock?: Clock;
  /** @defaultValue RELAY_LOCK_KEY */
  lockKey?: number;
  /** Try to become the leader this often while another relay is. @defaultValue 1000 */
  leaderRetryMs?: number;
  /** Published rows older than this are deleted. @defaultValue 1 hour */
  retentionMs?: number;
  /** How often the leader deletes old published rows. @defaultValue 60000 */
  housekeepingMs?: number;
  /** close() waits this long for the batch in flight, then gives up on it (it stays unmarked). @defaultValue 10000 */
  closeTimeoutMs?: number;
  /** Cap of the backoff while publishing fails. @defaultValue 5000 */
  maxBackoffMs?: number;
  /** Hears each time this relay takes (true) or gives up (false) the lead. */
  onLeading?: (leading: boolean) => void;
}

export interface Relay {
  /** Runs until close(): waits for leadership, then publishes. */
  start(): void;
  /** Stops taking work, lets the batch in flight publish and mark (bounded), releases the lock. Idempotent. */
  close(): Promise<void>;
  /** Publishes one batch if this relay is, or can become, the leader; returns the rows published. */
  runOnce(): Promise<number>;
}

export function createRelay(deps: RelayDeps): Relay {
  const { pool, producer, log, batchSize, pollMs, clock = systemClock, lockKey = RELAY_LOCK_KEY } = deps;
  const { leaderRetryMs = 1000, retentionMs = 3_600_000, housekeepingMs = 60_000 } = deps;
  const { closeTimeoutMs = 10_000, maxBackoffMs = 5000 } = deps;

  const stop = new AbortController();
  const stopped = stop.signal;
  // Ends the idle wait on an outbox commit, or when the lead is lost (to take it again at once).
  const wakeup = createWakeup();
  const leadership = createLeadership({ pool, lockKey, log, stopped, onCommit: () => wakeup.wake(), onLost: () => wakeup.wake(), onLeading: deps.onLeading });
  const publisher = createPublisher({ producer, batchSize });
  const housekeep = createHousekeeping({ clock, log, retentionMs, everyMs: housekeepingMs });
  const dbOutage = createOutageLog(log, { down: "relay cannot reach the database; retrying", up: "relay reached the database again" }, clock);
  const kafkaOutage = createOutageLog(log, { down: "kafka unavailable; relay backing off", up: "relay publishing again" }, clock);
  const otherOutage = createOutageLog(log, { down: "publishing outbox rows failed; relay backing off", up: "relay publishing again" }, clock);
  let publishOutage = kafkaOutage; // named after the failure that started it
  let loop: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  // Batches never overlap, whether from the loop or runOnce.
  let tail: Promise<unknown> = Promise.resolve();

  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn);
    tail = run.catch(() => {});
    return run;
  }

  async function run(): Promise<void> {
    let standingBy = false;
    while (!stopped.aborted) {
      const client = leadership.session;
      if (!client) {
        try {
          const led = await leadership.acquire();
          dbOutage.succeeded();
          if (!led && !standingBy) log.info("another relay is the leader; standing by");
          standingBy = !led;
          if (!led) await sleep(leaderRetryMs, stopped);
        } catch (err) {
          if (!stopped.aborted) dbOutage.failed(err);
          await sleep(leaderRetryMs, stopped);
        }
        continue;
      }
      try {
        await exclusive(() => publisher.publishAll(client, stopped));
      } catch (err) {
        if (stopped.aborted) break;
        if (err instanceof PublishError) {
          if (publishOutage.failures === 0) publishOutage = err.cause instanceof UnavailableError ? kafkaOutage : otherOutage;
          await sleep(backoffMs(publishOutage.failed(err.cause), { baseMs: 100, capMs: maxBackoffMs }), stopped);
        } else {
          // The database failed under us: the lock may be gone, so stop leading and start over.
          leadership.drop(client, err);
          await sleep(leaderRetryMs, stopped);
        }
        continue;
      }
      publishOutage.succeeded();
      // Thrown only for a failed connection (housekeeping.ts): the session goes as after a publish.
      await housekeep(client, stopped).catch((err: unknown) => leadership.drop(client, err));
      await wakeup.sleep(pollMs, stopped);
    }
  }

  return {
    start() {
      if (stopped.aborted || loop) return;
      loop = run().catch((err: unknown) => log.error({ err }, "relay loop failed"));
    },
    async runOnce() {
      if (stopped.aborted) return 0;
      if (!leadership.session) await leadership.acquire();
      const client = leadership.session; // ours, whether this call or the loop took the lock
      return client && !stopped.aborted ? exclusive(() => publisher.publishBatch(client)) : 0;
    },
    close() {
      closed ??= (async () => {
        stop.abort();
        const drained = await settlesWithin(Promise.all([loop, tail]), closeTimeoutMs);
        if (!drained) log.warn({ closeTimeoutMs }, "relay closed with a batch in flight; it stays unmarked and will be published again");
        leadership.release();
      })();
      return closed;
    },
  };
}

async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([work.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
