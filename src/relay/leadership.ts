import type pg from "pg";
import type { Logger } from "../log.js";
import { listenForOutbox } from "../outbox/channel.js";

// One publisher at a time, so records leave in outbox id order: the leader holds a session
// advisory lock and publishes over that same connection. If the connection dies, the lock is
// gone and so is this relay's ability to read the next batch; another relay takes over.

/** Advisory lock key of the relay leader ("herald" in ASCII). Locks are per database. */
export const RELAY_LOCK_KEY = 0x68_65_72_61_6c_64;

export interface Leadership {
  /** The leader's session while this relay leads. */
  readonly session: pg.PoolClient | undefined;
  /** Leads if it can: true when this relay is (now or already) the leader. Throws when the database fails. */
  acquire(): Promise<boolean>;
  /** Ends the leader session (which frees the lock and the LISTEN) without waiting on it. */
  drop(client: pg.PoolClient, why?: unknown): void;
  /** Ends the session for good, on close. */
  release(): void;
}

export interface LeadershipDeps {
  pool: pg.Pool;
  lockKey: number;
  log: Logger;
  /** Aborted on close: no session is kept once it is. */
  stopped: AbortSignal;
  /** An outbox commit was notified on the leader's session. */
  onCommit(): void;
  /** The session was lost (the loop should stop waiting and start over). */
  onLost(): void;
  /** This relay took (true) or gave up (false) the lead: the leader gauge follows it. */
  onLeading?(leading: boolean): void;
}

export function createLeadership(deps: LeadershipDeps): Leadership {
  const { pool, lockKey, log, stopped } = deps;
  let leader: pg.PoolClient | undefined;

  function drop(client: pg.PoolClient, why?: unknown): void {
    if (leader !== client) return;
    leader = undefined;
    client.release(why instanceof Error ? why : true);
    deps.onLeading?.(false);
    deps.onLost();
    if (!stopped.aborted) log.warn({ err: why }, "relay lost leadership");
  }

  async function acquire(): Promise<boolean> {
    if (leader) return true;
    const client = await pool.connect();
    // A checked-out client has no error listener of the pool's: without ours, a connection
    // the server drops while we hold it would crash the process.
    const onError = (err: Error) => drop(client, err);
    client.on("error", onError);
    try {
      const res = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [lockKey]);
      if (res.rows[0]?.locked !== true) {
        client.removeListener("error", onError);
        client.release(); // took nothing: the session goes back to the pool as it was
        return false;
      }
      await listenForOutbox(client, () => deps.onCommit());
      if (stopped.aborted) {
        client.release(true); // ending the session frees the lock
        return false;
      }
      client.on("end", () => drop(client, new Error("leader connection ended")));
      leader = client;
      deps.onLeading?.(true);
      log.info("relay is the leader");
      return true;
    } catch (err) {
      client.release(err as Error); // destroyed, never pooled: it may hold the lock
      throw err;
    }
  }

  return {
    get session() {
      return leader;
    },
    acquire,
    drop,
    release() {
      const client = leader;
      leader = undefined;
      client?.release(true);
      if (client) deps.onLeading?.(false);
    },
  };
}
