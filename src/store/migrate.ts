import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { inTransaction } from "./db.js";

// Migrations are the .sql files in src/store/migrations, applied in name
// order, each once. dist/ holds no .sql files, so compiled code reads src/.
function resolveMigrationsDir(): string {
  const here = fileURLToPath(import.meta.url);
  // src/store/migrate.ts → src/store/migrations; dist/src/store/migrate.js → src/store/migrations
  return here.includes("/dist/src/")
    ? here.replace(/\/dist\/src\/store\/[^/]+$/, "/src/store/migrations")
    : here.replace(/\/[^/]+$/, "/migrations");
}

/** Fixed key for pg_advisory_xact_lock: one migrator at a time across processes. */
const MIGRATION_LOCK = 0x68657261; // "hera"

/** Applies every migration not yet applied. Safe to run from several processes at once. */
export async function migrate(pool: pg.Pool, dir = resolveMigrationsDir()): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  return inTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const done = new Set(
      (await client.query<{ name: string }>("SELECT name FROM schema_migrations")).rows.map((r) => r.name),
    );
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await client.query(await readFile(`${dir}/${file}`, "utf8"));
      await client.query("INSERT INTO schema_migrations (name) VALUES ($1)", [file]);
      applied.push(file);
    }
    return applied;
  });
}
