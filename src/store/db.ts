import pg from "pg";
import { isUnavailable } from "./errors.js";

/** Options for the PostgreSQL pool. The defaults are those of the HERALD_DB_* variables (config.ts). */
export interface DbOptions {
  /** Connection string, e.g. postgres://postgres@127.0.0.1:5432/herald. */
  url: string;
  /** Pool size. @defaultValue 10 */
  max?: number;
  /**
   * Give up on a checkout (connecting, or waiting for a busy pool) after this long, so a down
   * database answers UNAVAILABLE quickly. @defaultValue 1000
   */
  connectTimeoutMs?: number;
  /** Server-side statement timeout (0: none). @defaultValue 1000 */
  statementTimeoutMs?: number;
  /**
   * Client-side: a query with no answer after this long fails, and its connection is destroyed
   * (0: none). Longer than the statement timeout, so a database that is there but slow answers
   * with its own error first and the connection is kept. @defaultValue 1500
   */
  queryTimeoutMs?: number;
  /** Name shown in pg_stat_activity. @defaultValue "herald" */
  applicationName?: string;
}

// A session whose client vanished in a partition (its FIN lost with everything else) is not
// noticed by the server for hours by default: it keeps its locks while in a transaction, and
// its connection slot after. The server kills a transaction idle this long (ours run no client
// work between statements), and probes an idle connection after 10 s.
const IDLE_IN_TRANSACTION_MS = 10_000;
const SERVER_KEEPALIVES = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";

/** Opens a pool. It connects lazily; call `ensureDatabase` first on start. */
export function createPool(opts: DbOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: withServerOptions(opts.url),
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 1000,
    // pg reads 0 as "no timeout" for both.
    statement_timeout: opts.statementTimeoutMs ?? 1000,
    query_timeout: opts.queryTimeoutMs ?? 1500,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    application_name: opts.applicationName ?? "herald",
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // An idle client losing its connection (database restart) must not crash the
  // process; the pool drops it and the next checkout reconnects.
  pool.on("error", () => {});
  return pool;
}

/** `url` with our server settings added to its `options` (a connection string's own take precedence, set after ours). */
function withServerOptions(url: string): string {
  const u = new URL(url);
  const own = u.searchParams.get("options");
  u.searchParams.set("options", own ? `${SERVER_KEEPALIVES} ${own}` : SERVER_KEEPALIVES);
  return u.toString();
}

/**
 * Creates the database named in `url` if it does not exist, by connecting to
 * the `postgres` maintenance database of the same server.
 */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!name) throw new Error("DATABASE_URL names no database");
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } catch (err) {
        // Two processes starting at once both try; the loser sees 42P04.
        if ((err as { code?: string }).code !== "42P04") throw err;
      }
    }
  } finally {
    await client.end();
  }
}

/**
 * Whether `err` means the connection it came from is unusable: pg's own failures (a read
 * timeout, a lost or closed connection, a socket error), not an error the server answered with.
 * A query that timed out on the client is still in flight (pg keeps it as the active query), so
 * anything sent after it would queue behind it and time out in turn. After the server's own
 * errors (a constraint, statement_timeout) the protocol is in step and, after a ROLLBACK, the
 * connection as good as new.
 */
export function isConnectionFailure(err: unknown): boolean {
  return !(err instanceof pg.DatabaseError) && isUnavailable(err);
}

/**
 * Runs `fn` in a transaction on one client, committing on success. A connection that failed is
 * destroyed with no ROLLBACK sent: the server rolls back a transaction whose connection ends, and
 * a ROLLBACK queued behind a stuck query would only wait out another timeout. After any other
 * error (the server's, or fn's own) it is rolled back and returned to the pool, unless the
 * ROLLBACK fails too.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  /** Told when a connection is in hand, just before BEGIN (what waits for the pool is not the transaction's). */
  opts?: { begins?(): void },
): Promise<T> {
  const client = await pool.connect();
  opts?.begins?.();
  // A checked-out client has no 'error' listener (pg-pool removes its own), and
  // a connection lost mid-transaction emits one besides failing the query:
  // unheard, it would crash the process. The failed query still rejects.
  let broken: Error | undefined;
  const onError = (err: Error) => void (broken ??= err);
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    if (!broken && isConnectionFailure(err)) broken = err instanceof Error ? err : new Error(String(err));
    if (!broken) broken = await rollback(client);
    throw err;
  } finally {
    client.off("error", onError);
    // Released with an error, pg-pool destroys the connection instead of pooling it.
    client.release(broken);
  }
}

/** Rolls back; the error if that failed (the connection is then not to be reused). */
async function rollback(client: pg.PoolClient): Promise<Error | undefined> {
  return client.query("ROLLBACK").then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
}
