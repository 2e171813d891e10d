import { randomBytes } from "node:crypto";
import pg from "pg";
import { createPool, ensureDatabase } from "../../src/store/db.js";
import { migrate } from "../../src/store/migrate.js";

export const PG_SERVER = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";

/** A fresh, migrated database with a unique name; drop() removes it. */
export interface TestDatabase {
  url: string;
  name: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
}

export async function createTestDatabase(prefix = "herald_t"): Promise<TestDatabase> {
  const name = uniqueName(prefix);
  const url = `${PG_SERVER}/${name}`;
  await ensureDatabase(url);
  const pool = createPool({ url, max: 10 });
  await migrate(pool);
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end();
      const admin = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
