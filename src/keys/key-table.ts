import type pg from "pg";
import type { Logger } from "../log.js";
import type { Scope } from "../domain/key-format.js";
import { KEYS_CHANNEL, loadApiKeys, touchApiKeys, type StoredKeyWithHash } from "../store/api-keys.js";
import { createOutageLog } from "../loop/outage.js";
import { createWakeup, sleep } from "../loop/sleep.js";
import { backoffMs } from "../loop/backoff.js";
import { systemClock, type Clock } from "../clock.js";
import type { KeyTableMetrics } from "../metrics/api-keys.js";

// The API keys of PostgreSQL (store/api-keys.ts), held in memory by each API instance: the edge
// admits every call, so it must never wait on the database. One session LISTENs on KEYS_CHANNEL
// and reloads the whole table when `herald keys` changes it (tens or thousands of rows, read in a
// millisecond or so); a reload every `refreshMs` covers a notification lost with a connection.
// While the database is away the last table read stays in use: callers already known keep
// working, a key revoked meanwhile is refused once the database is back.

/** A stored key as the edge checks it. Times are epoch ms; null: never. */
export interface StoredKey {
  id: string;
  tenant: string;
  /** SHA-256 of the whole key. */
  hash: Buffer;
  scopes: ReadonlySet<Scope>;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** What the edge reads: a key by its id, and a note that it was used. */
export interface KeyLookup {
  get(id: string): StoredKey | undefined;
  /** Remembered in memory; written (last_used_at) with the next reload, once per key. */
  used(id: string): void;
}

export interface KeyTable extends KeyLookup {
  /** Reads the table once; throws when the database does not answer (the role waits on it). */
  load(): Promise<void>;
  /** Starts listening for changes and reloading; call after a first load(). */
  start(): void;
  /** Stops listening, writes the last uses, idempotent. */
  close(): Promise<void>;
  readonly size: number;
}

export interface KeyTableDeps {
  pool: pg.Pool;
  log: Logger;
  /** The periodic reload: the safety net under NOTIFY, and how often last_used_at is written. */
  refreshMs: number;
  metrics?: KeyTableMetrics;
  clock?: Clock;
}

/** Reconnecting the listening session after a failure: 0.5 s, doubling, at most 30 s. */
const RECONNECT = { baseMs: 500, capMs: 30_000 };

export function createKeyTable(deps: KeyTableDeps): KeyTable {
  const { pool, log, refreshMs, metrics } = deps;
  const clock = deps.clock ?? systemClock;
  let keys = new Map<string, StoredKey>();
  let shape = "";
  let usedIds = new Set<string>();
  const stop = new AbortController();
  const wakeup = createWakeup();
  const outage = createOutageLog(log, { down: "api keys: database unavailable; keeping the last table read", up: "api keys: reloading again" });
  let running: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  async function reload(db: Pick<pg.ClientBase, "query">, why: string): Promise<void> {
    const rows = await loadApiKeys(db);
    const next = new Map(rows.map((r) => [r.id, toStoredKey(r)]));
    // Logged when something changed, not on every periodic reload.
    const nextShape = rows.map((r) => `${r.id}:${r.revokedAt?.getTime() ?? ""}:${r.expiresAt?.getTime() ?? ""}:${r.scopes.join(",")}`).sort().join(" ");
    if (nextShape !== shape) log.info({ keys: next.size, why }, "api keys reloaded");
    keys = next;
    shape = nextShape;
    metrics?.loaded(next.size);
    metrics?.reloadedAt(clock.now());
  }

  async function flushUses(db: Pick<pg.ClientBase, "query">): Promise<void> {
    if (usedIds.size === 0) return;
    const ids = [...usedIds];
    usedIds = new Set();
    try {
      await touchApiKeys(db, ids);
    } catch (err) {
      // Kept for the next try: a lost write would only make a key look idle.
      for (const id of ids) usedIds.add(id);
      throw err;
    }
  }

  /** One listening session: LISTEN, read, then reload on each notification or tick until it fails. */
  async function listen(): Promise<void> {
    const client = await pool.connect();
    let lost: Error | undefined;
    const onLost = (err?: unknown) => {
      lost ??= err instanceof Error ? err : new Error("api keys session ended");
      wakeup.wake();
    };
    let notified = false;
    client.on("error", onLost);
    client.on("end", onLost);
    client.on("notification", (msg: pg.Notification) => {
      if (msg.channel !== KEYS_CHANNEL) return;
      notified = true;
      wakeup.wake();
    });
    try {
      // Named, so an operator tells this long-lived session from the pool's in pg_stat_activity.
      await client.query("SET application_name = 'herald-api-keys'");
      // LISTEN before reading: a change committed in between is read now or notified, never missed.
      await client.query(`LISTEN ${KEYS_CHANNEL}`);
      await reload(client, "listening");
      outage.succeeded();
      while (!stop.signal.aborted) {
        await wakeup.sleep(refreshMs, stop.signal);
        if (stop.signal.aborted) return;
        if (lost) throw lost;
        const why = notified ? "notified" : "periodic";
        notified = false;
        await flushUses(client);
        await reload(client, why);
      }
    } finally {
      client.removeListener("error", onLost);
      client.removeListener("end", onLost);
      // Never pooled again: the session holds a LISTEN, and may be broken.
      client.release(true);
    }
  }

  async function run(): Promise<void> {
    while (!stop.signal.aborted) {
      try {
        await listen();
      } catch (err) {
        if (stop.signal.aborted) return;
        const failures = outage.failed(err);
        await sleep(backoffMs(failures, RECONNECT), stop.signal);
      }
    }
  }

  return {
    get(id) {
      return keys.get(id);
    },
    used(id) {
      usedIds.add(id);
    },
    async load() {
      await reload(pool, "start");
    },
    start() {
      running ??= run();
    },
    close() {
      closing ??= (async () => {
        stop.abort();
        await running;
        try {
          await flushUses(pool);
        } catch (err) {
          log.warn({ err }, "api keys: last uses not written");
        }
      })();
      return closing;
    },
    get size() {
      return keys.size;
    },
  };
}

function toStoredKey(r: StoredKeyWithHash): StoredKey {
  return {
    id: r.id,
    tenant: r.tenant,
    hash: r.hash,
    scopes: new Set(r.scopes),
    expiresAt: r.expiresAt?.getTime() ?? null,
    revokedAt: r.revokedAt?.getTime() ?? null,
  };
}
