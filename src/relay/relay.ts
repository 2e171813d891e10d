import type pg from "pg";
import { fromBinary } from "@bufbuild/protobuf";
import { StatusEventSchema } from "../../gen/herald/v1/notification_pb.js";
import { UnavailableError } from "../errors.js";
import type { KafkaRecord } from "../kafka/kafka.js";
import { STATUS_TOPIC } from "../kafka/topics.js";
import { FEED_POSITION_HEADER } from "../feed/feed-event.js";
import type { Logger } from "../log.js";
import { OUTBOX_CHANNEL } from "../outbox/channel.js";
import { assignFeedPositions } from "../feed/positions.js";
import { systemClock, type Clock } from "../clock.js";

// The outbox relay: publishes committed outbox rows to Kafka, oldest first, then marks them.
//
// At-least-once: a row is marked only after Kafka acknowledged it, so a crash between publish
// and mark publishes it again, and consumers dedupe. (Such a repeat can even follow newer
// records of its key, when a leader that lost its lock was still finishing a batch.)
// Nothing committed is skipped: each batch takes every unpublished row rather than following
// an id cursor, because ids are drawn at insert but become visible at commit, out of order.
//
// A backlog is pipelined (publishAll): batch N+1 is selected and positioned, and batch N-1
// marked, while Kafka acknowledges batch N; N+1 is sent only after N's acknowledgement.
//
// One publisher at a time, so records leave in outbox id order: the leader holds a session
// advisory lock and publishes over that same connection. If the connection dies, the lock is
// gone and so is this relay's ability to read the next batch; another relay takes over.
//
// herald.status records get their status-feed position here, on the leader's session, just
// before they are published (see migration 003): so positions reach Kafka in increasing order,
// and a republished record carries the position of its first copy.

export { OUTBOX_CHANNEL };

/** Advisory lock key of the relay leader ("herald" in ASCII). Locks are per database. */
export const RELAY_LOCK_KEY = 0x68_65_72_61_6c_64;

/** Where records go; the Kafka producer in production, a wrapper or fake in tests. */
export interface RecordSink {
  sendBatch(records: readonly KafkaRecord[]): Promise<void>;
}

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
}

export interface Relay {
  /** Runs until close(): waits for leadership, then publishes. */
  start(): void;
  /** Stops taking work, lets the batch in flight publish and mark (bounded), releases the lock. Idempotent. */
  close(): Promise<void>;
  /** Publishes one batch if this relay is, or can become, the leader; returns the rows published. */
  runOnce(): Promise<number>;
}

/** Backoff after the n-th consecutive failure: exponential from 100 ms, capped, half of it random. */
export function relayBackoffMs(failures: number, capMs = 5000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, 100 * 2 ** Math.min(Math.max(failures, 1) - 1, 16));
  // Never near zero (a dead broker is not hammered), and relays restarting together spread out.
  return ceiling / 2 + (random() * ceiling) / 2;
}

interface OutboxRow {
  id: string;
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, unknown>;
}

/** A batch selected and positioned, not yet published. */
interface Prepared {
  ids: string[];
  records: KafkaRecord[];
}

/** The publish step failed; the rows are not marked. */
class PublishError extends Error {
  override name = "PublishError";
}

const HOUSEKEEPING_BATCH = 1000;

export function createRelay(deps: RelayDeps): Relay {
  const { pool, producer, log, batchSize, pollMs } = deps;
  const clock = deps.clock ?? systemClock;
  const lockKey = deps.lockKey ?? RELAY_LOCK_KEY;
  const { leaderRetryMs = 1000, retentionMs = 3_600_000, housekeepingMs = 60_000 } = deps;
  const { closeTimeoutMs = 10_000, maxBackoffMs = 5000 } = deps;

  let leader: pg.PoolClient | undefined;
  let closing = false;
  let loop: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  // Batches never overlap, whether from the loop or runOnce.
  let tail: Promise<unknown> = Promise.resolve();
  // A NOTIFY that arrived while no one was waiting: the next idle wait returns at once.
  let notified = false;
  const sleepers = new Set<{ onNotify: boolean; wake(): void }>();
  let nextHousekeeping = clock.now();
  let dbDown = false;

  const wakeAll = () => [...sleepers].forEach((s) => s.wake());
  const onNotification = (msg: pg.Notification) => {
    if (msg.channel !== OUTBOX_CHANNEL) return;
    notified = true;
    for (const s of sleepers) if (s.onNotify) s.wake();
  };

  function sleep(ms: number, onNotify: boolean): Promise<void> {
    if (closing) return Promise.resolve();
    if (onNotify && notified) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = {
        onNotify,
        wake() {
          clearTimeout(timer);
          sleepers.delete(sleeper);
          resolve();
        },
      };
      const timer = setTimeout(() => sleeper.wake(), ms);
      sleepers.add(sleeper);
    });
  }

  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn);
    tail = run.catch(() => {});
    return run;
  }

  // Ends the leader session (which frees the lock and the LISTEN) without waiting on it.
  function dropLeader(client: pg.PoolClient, why?: unknown): void {
    if (leader !== client) return;
    leader = undefined;
    client.release(why instanceof Error ? why : true);
    wakeAll();
    if (!closing) log.warn({ err: why }, "relay lost leadership");
  }

  async function tryLead(): Promise<boolean> {
    if (leader) return true;
    const client = await pool.connect();
    // A checked-out client has no error listener of the pool's: without ours, a connection
    // the server drops while we hold it would crash the process.
    const onError = (err: Error) => dropLeader(client, err);
    client.on("error", onError);
    try {
      const res = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [lockKey]);
      if (res.rows[0]?.locked !== true) {
        client.removeListener("error", onError);
        client.release(); // took nothing: the session goes back to the pool as it was
        return false;
      }
      // LISTEN before the first SELECT: a row committed in between is then either seen or notified.
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      if (closing) {
        client.release(true); // ending the session frees the lock
        return false;
      }
      client.on("notification", onNotification);
      client.on("end", () => dropLeader(client, new Error("leader connection ended")));
      leader = client;
      log.info("relay is the leader");
      return true;
    } catch (err) {
      client.release(err as Error); // destroyed, never pooled: it may hold the lock
      throw err;
    }
  }

  /**
   * The next batch, selected and given its feed positions on the leader's session: every
   * unpublished row but those of `inFlight` (being published, not yet marked).
   */
  async function prepare(client: pg.PoolClient, inFlight: readonly string[]): Promise<Prepared | undefined> {
    notified = false; // the SELECT below sees every commit notified so far
    const { rows } = await client.query<OutboxRow>(
      `SELECT id, topic, key, value, headers FROM outbox
       WHERE published_at IS NULL AND NOT (id = ANY($2::bigint[])) ORDER BY id LIMIT $1`,
      [batchSize, inFlight],
    );
    if (rows.length === 0) return undefined;
    return { ids: rows.map((r) => r.id), records: await withFeedPositions(client, rows) };
  }

  async function publish(batch: Prepared): Promise<void> {
    try {
      await producer.sendBatch(batch.records);
    } catch (err) {
      throw new PublishError("publish failed", { cause: err });
    }
  }

  async function mark(client: pg.PoolClient, ids: readonly string[]): Promise<void> {
    await client.query("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [ids]);
  }

  /** One batch, one step after the other (runOnce). */
  async function publishBatch(client: pg.PoolClient): Promise<number> {
    const batch = await prepare(client, []);
    if (!batch) return 0;
    await publish(batch);
    await mark(client, batch.ids);
    return batch.ids.length;
  }

  /**
   * Publishes until nothing is left, pipelined: while Kafka acknowledges batch N, the leader's
   * session marks batch N-1 and prepares batch N+1, so a cycle costs the longer of the two
   * instead of their sum. Batch N+1 is published only after N's acknowledgement, so records
   * still leave in order and feed positions still reach Kafka increasing; a batch is marked
   * only after its acknowledgement. A failed publish drops the prepared batch unmarked (the
   * next attempt selects it again, with the positions it was given).
   */
  async function publishAll(client: pg.PoolClient): Promise<void> {
    let current = await prepare(client, []);
    let unmarked: readonly string[] = [];
    while (current && !closing) {
      const batch: Prepared = current;
      const sending = publish(batch);
      const alongside = (async () => {
        if (unmarked.length > 0) await mark(client, unmarked);
        return prepare(client, batch.ids);
      })();
      const [sent, next] = await Promise.allSettled([sending, alongside]);
      if (next.status === "rejected") throw next.reason; // the database: the caller drops the lead
      if (sent.status === "rejected") throw sent.reason;
      unmarked = batch.ids;
      current = next.value;
    }
    if (unmarked.length > 0) await mark(client, unmarked);
  }

  async function housekeep(client: pg.PoolClient): Promise<void> {
    if (clock.now() < nextHousekeeping) return;
    try {
      // Small batches in id order (the primary key walks oldest first), so no long lock or scan.
      const res = await client.query(
        `DELETE FROM outbox WHERE id IN (
           SELECT id FROM outbox WHERE published_at < now() - $1::bigint * interval '1 millisecond'
           ORDER BY id LIMIT $2)`,
        [retentionMs, HOUSEKEEPING_BATCH],
      );
      const more = res.rowCount === HOUSEKEEPING_BATCH;
      nextHousekeeping = more ? clock.now() : clock.now() + housekeepingMs;
      if (res.rowCount) log.debug({ deleted: res.rowCount }, "relay deleted published outbox rows");
    } catch (err) {
      nextHousekeeping = clock.now() + housekeepingMs;
      if (!closing) log.warn({ err }, "relay housekeeping failed");
    }
  }

  async function run(): Promise<void> {
    let failures = 0;
    let failingSince = 0;
    let standingBy = false;
    while (!closing) {
      const client = leader;
      if (!client) {
        try {
          const led = await tryLead();
          if (dbDown) log.info("relay reached the database again");
          dbDown = false;
          if (!led && !standingBy) log.info("another relay is the leader; standing by");
          standingBy = !led;
          if (!led) await sleep(leaderRetryMs, false);
        } catch (err) {
          if (!dbDown && !closing) log.warn({ err }, "relay cannot reach the database; retrying");
          dbDown = true;
          await sleep(leaderRetryMs, false);
        }
        continue;
      }
      try {
        await exclusive(() => publishAll(client));
      } catch (err) {
        if (closing) break;
        if (err instanceof PublishError) {
          if (failures++ === 0) {
            failingSince = clock.now();
            const cause = err.cause;
            if (cause instanceof UnavailableError) log.warn({ err: cause }, "kafka unavailable; relay backing off");
            else log.error({ err: cause }, "publishing outbox rows failed; relay backing off");
          }
          await sleep(relayBackoffMs(failures, maxBackoffMs), false);
        } else {
          // The database failed under us: the lock may be gone, so stop leading and start over.
          dropLeader(client, err);
          await sleep(leaderRetryMs, false);
        }
        continue;
      }
      if (failures > 0) {
        log.info({ failures, downMs: clock.now() - failingSince }, "relay publishing again");
        failures = 0;
      }
      await housekeep(client);
      await sleep(pollMs, true);
    }
  }

  return {
    start() {
      if (closing || loop) return;
      loop = run().catch((err: unknown) => log.error({ err }, "relay loop failed"));
    },
    async runOnce() {
      if (closing) return 0;
      if (!leader) await tryLead();
      const client = leader; // ours, whether this call or the loop took the lock
      return client && !closing ? exclusive(() => publishBatch(client)) : 0;
    },
    close() {
      closed ??= (async () => {
        closing = true;
        wakeAll();
        const drained = await settlesWithin(Promise.all([loop, tail]), closeTimeoutMs);
        if (!drained) log.warn({ closeTimeoutMs }, "relay closed with a batch in flight; it stays unmarked and will be published again");
        if (leader) {
          const client = leader;
          leader = undefined;
          client.release(true);
        }
      })();
      return closed;
    },
  };
}

/**
 * The batch as Kafka records, herald.status ones with their feed position header and in
 * position order (a row assigned by an earlier, unmarked batch can have a lower position
 * than a row with a lower outbox id). Other topics keep outbox id order.
 */
async function withFeedPositions(client: pg.ClientBase, rows: readonly OutboxRow[]): Promise<KafkaRecord[]> {
  const records = rows.map(toRecord);
  const status = records.filter((r) => r.topic === STATUS_TOPIC);
  if (status.length === 0) return records;
  const positions = await assignFeedPositions(
    client,
    status.map((r) => {
      const event = fromBinary(StatusEventSchema, r.value);
      return { notificationId: event.notificationId, sequence: event.sequence };
    }),
  );
  const positioned = status.map((record, i) => ({ record, position: positions[i] ?? Number.MAX_SAFE_INTEGER }));
  for (const { record, position } of positioned) {
    if (position !== Number.MAX_SAFE_INTEGER) record.headers = { ...record.headers, [FEED_POSITION_HEADER]: String(position) };
  }
  positioned.sort((a, b) => a.position - b.position); // stable: unpositioned keep id order, last
  return [...records.filter((r) => r.topic !== STATUS_TOPIC), ...positioned.map((p) => p.record)];
}

function toRecord(row: OutboxRow): KafkaRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(row.headers ?? {})) {
    headers[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return { topic: row.topic, key: row.key, value: row.value, headers };
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
