import pg from "pg";

/** Options for the PostgreSQL pool. */
export interface DbOptions {
  /** Connection string, e.g. postgres://postgres@127.0.0.1:5432/herald. */
  url: string;
  /** Pool size. @defaultValue 10 */
  max?: number;
  /** Give up connecting after this long, so a down database answers UNAVAILABLE quickly. @defaultValue 2000 */
  connectTimeoutMs?: number;
  /** Server-side statement timeout; no query may hang a request. @defaultValue 5000 */
  statementTimeoutMs?: number;
  /** Name shown in pg_stat_activity. @defaultValue "herald" */
  applicationName?: string;
}

/** Opens a pool. It connects lazily; call `ensureDatabase` first on start. */
export function createPool(opts: DbOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000,
    statement_timeout: opts.statementTimeoutMs ?? 5000,
    query_timeout: (opts.statementTimeoutMs ?? 5000) + 1000,
    application_name: opts.applicationName ?? "herald",
    keepAlive: true,
  });
  // An idle client losing its connection (database restart) must not crash the
  // process; the pool drops it and the next checkout reconnects.
  pool.on("error", () => {});
  return pool;
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

/** Runs `fn` in a transaction on one client, committing on success. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A checked-out client has no 'error' listener (pg-pool removes its own), and
  // a connection lost mid-transaction emits one besides failing the query:
  // unheard, it would crash the process. The failed query still rejects.
  let lost: Error | undefined;
  const onError = (err: Error) => void (lost ??= err);
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    if (!lost) await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.off("error", onError);
    // A broken connection is destroyed, not returned to the pool.
    client.release(lost);
  }
}
