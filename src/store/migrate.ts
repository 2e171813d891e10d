import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { inTransaction } from "./db.js";

// Migrations are the .sql files in the migrations folder next to this module,
// applied in name order, each once: src/store/migrations when run from source,
// dist/src/store/migrations (copied there by scripts/build-migrations.mjs) when
// compiled, so the published package carries its schema inside dist/.
const migrationsDir = fileURLToPath(new URL("./migrations/", import.meta.url));

/** Fixed key for pg_advisory_xact_lock: one migrator at a time across processes. */
const MIGRATION_LOCK = 0x68657261; // "hera"

// A migration may rewrite or index a large table, and waits for another process's migration:
// neither the pool's statement timeout nor its client-side query timeout (both there to fail
// API calls fast) may cut it short. 0 would mean "the pool's default" to pg; this is
// setTimeout's largest delay (~24.8 days).
const NO_QUERY_TIMEOUT = 2 ** 31 - 1;
const unbounded = (text: string, values?: unknown[]) => ({ text, values, query_timeout: NO_QUERY_TIMEOUT });

/** Applies every migration not yet applied. Safe to run from several processes at once. */
export async function migrate(pool: pg.Pool, dir = migrationsDir): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  return inTransaction(pool, async (client) => {
    await client.query("SET LOCAL statement_timeout = 0");
    await client.query(unbounded("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]));
    await client.query(
      unbounded("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"),
    );
    const done = new Set(
      (await client.query<{ name: string }>("SELECT name FROM schema_migrations")).rows.map((r) => r.name),
    );
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await client.query(unbounded(await readFile(join(dir, file), "utf8")));
      await client.query("INSERT INTO schema_migrations (name) VALUES ($1)", [file]);
      applied.push(file);
    }
    return applied;
  });
}
