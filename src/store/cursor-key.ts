import { randomBytes } from "node:crypto";
import type pg from "pg";
import { withStoreErrors } from "./errors.js";

// The key WatchStatus cursors are sealed with (domain/cursor.ts). Every API instance must use
// the same one, or a stream could not resume on another instance; the database is what they
// already share, so the first instance to start stores a random key and every other reads it.
// Nothing to configure, and nothing an operator could leave at a default. Rotating it (delete
// the row) invalidates outstanding cursors: clients then resume with a snapshot instead.

const NAME = "watch-cursor";

export async function loadCursorKey(pool: pg.Pool): Promise<Buffer> {
  return withStoreErrors(async () => {
    // Concurrent first starts: one insert wins, and both read the winner's key.
    await pool.query("INSERT INTO herald_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [NAME, randomBytes(32)]);
    const found = await pool.query<{ value: Buffer }>("SELECT value FROM herald_secrets WHERE name = $1", [NAME]);
    return found.rows[0]!.value;
  });
}
