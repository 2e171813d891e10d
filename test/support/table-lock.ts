import type pg from "pg";
import { waitFor } from "./wait.js";

// A store made slow on purpose: the test holds an EXCLUSIVE lock on the notifications table, so
// an accept batch waits inside its INSERT for as long as the test likes. "The commit is busy"
// is then a state the test sets up, not a race it hopes to win.

/** Holds writes to notifications until release() (idempotent). */
export async function lockNotifications(pool: pg.Pool): Promise<{ release(): Promise<void> }> {
  const client = await pool.connect();
  await client.query("BEGIN");
  await client.query("LOCK TABLE notifications IN EXCLUSIVE MODE");
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await client.query("ROLLBACK");
      client.release();
    },
  };
}

/** Waits until an accept batch is blocked on the lock. */
export const batchWaiting = (pool: pg.Pool) =>
  waitFor("an accept batch waiting on the lock", async () => {
    const r = await pool.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE relation = 'notifications'::regclass AND NOT granted");
    return Number(r.rows[0]!.n) > 0;
  });

/**
 * Database timeouts for a Herald whose commits a test holds with lockNotifications: long enough
 * that the held INSERT waits for the lock instead of ending as a lost database (UNAVAILABLE).
 */
export const HELD_COMMIT_TIMEOUTS = { HERALD_DB_STATEMENT_TIMEOUT_MS: "60000", HERALD_DB_QUERY_TIMEOUT_MS: "65000" };
