import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import type pg from "pg";
import { pino } from "pino";
import { createPool } from "../src/store/db.js";
import { insertApiKey, revokeApiKey } from "../src/store/api-keys.js";
import { generateKey } from "../src/domain/key-format.js";
import { createKeyTable, type KeyTable } from "../src/keys/key-table.js";
import { createTestDatabase, PG_SERVER, type TestDatabase } from "./support/db.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";
import { waitFor } from "./support/wait.js";

// The key table while PostgreSQL is away: the edge must keep admitting the keys it knew (no
// lock-out, no crash), and once the database is back the table must catch up with what changed
// meanwhile, a revocation whose NOTIFY went to nobody included.

describe("the stored key table through a database outage", () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let pool: pg.Pool;
  let table: KeyTable;
  const lines: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase("herald_keys");
    const server = new URL(PG_SERVER);
    proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    pool = createPool({ url: viaProxy.toString(), max: 2 });
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    table = createKeyTable({ pool, log: pino({ level: "info" }, sink), refreshMs: 100 });
  });
  afterAll(async () => {
    await proxy?.restore();
    await table?.close();
    await pool?.end();
    await proxy?.close();
    await db?.drop();
  });

  it("keeps the last table read while the database is away, and catches up when it returns", { timeout: 60_000 }, async () => {
    const made = generateKey();
    // Written by the test's own pool, straight to PostgreSQL: it is the table's view that is cut.
    await insertApiKey(db.pool, { id: made.id, tenant: "acme", hash: made.hash, name: "", scopes: ["send"], expiresAt: null });
    await table.load();
    table.start();
    expect(table.get(made.id)).toMatchObject({ tenant: "acme", revokedAt: null });

    await proxy.cut();
    await waitFor("the outage noticed", () => lines.some((l) => l.includes("api keys: database unavailable")));
    // Still known, and the loop did not crash the process (it is still trying: see below).
    expect(table.get(made.id)).toMatchObject({ tenant: "acme", revokedAt: null });
    table.used(made.id);

    await revokeApiKey(db.pool, made.id);
    await proxy.restore();
    await waitFor("the revocation made during the outage read", () => table.get(made.id)?.revokedAt !== null);
    expect(lines.some((l) => l.includes("api keys: reloading again"))).toBe(true);
    // The use noted during the outage is written once the database is back.
    await waitFor("last_used_at written", async () => {
      const r = await db.pool.query<{ last_used_at: Date | null }>("SELECT last_used_at FROM api_keys WHERE id = $1", [made.id]);
      return r.rows[0]?.last_used_at ?? undefined;
    });
  });
});
