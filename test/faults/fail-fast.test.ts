import { describe, expect, it } from "vitest";
import pg from "pg";
import { loadConfig } from "../../src/config.js";
import { ConfigError } from "../../src/config-env.js";
import { isConnectionFailure } from "../../src/store/db.js";
import { createGroupCommit } from "../../src/store/group-commit.js";
import { waitFor } from "../support/wait.js";

// The pieces that turn a lost database into a fast UNAVAILABLE, without a database: which
// failures destroy a connection, the group commit sharing a failure with whoever waits behind
// it, and the timeouts' configuration.

const down = Object.assign(new Error("Query read timeout"), { down: true });

/** A flush the test fails or finishes by hand. */
function manualFlush() {
  const batches: { items: number[]; fail(err: unknown): void; finish(): void }[] = [];
  return {
    batches,
    flush: (items: readonly number[]) =>
      new Promise<PromiseSettledResult<number>[]>((resolve) => {
        batches.push({
          items: [...items],
          fail: (reason) => resolve(items.map(() => ({ status: "rejected", reason }))),
          finish: () => resolve(items.map((value) => ({ status: "fulfilled", value }))),
        });
      }),
  };
}

const settle = (p: Promise<unknown>) => p.then(() => "ok", (err: unknown) => err);

describe("group commit sharing a failure", () => {
  const open = (f: ReturnType<typeof manualFlush>) =>
    createGroupCommit<number, number>({
      maxBatch: 100,
      maxDelayMs: 1,
      flush: f.flush,
      closedError: () => new Error("closed"),
      sharesFailure: (err) => (err as { down?: boolean }).down === true,
    });

  it("fails whatever waited behind a flush the resource failed, without another attempt", async () => {
    const f = manualFlush();
    const gc = open(f);
    const first = settle(gc.submit(1));
    await waitFor("the first batch", () => f.batches.length === 1);
    const waiting = [settle(gc.submit(2)), settle(gc.submit(3))];
    f.batches[0]!.fail(down);
    expect(await Promise.all([first, ...waiting])).toEqual([down, down, down]);
    expect(f.batches).toHaveLength(1);
    // The next item gets its own attempt: that is how the service finds the database back.
    const later = gc.submit(4);
    await waitFor("a second batch", () => f.batches.length === 2);
    expect(f.batches).toHaveLength(2);
    f.batches[1]!.finish();
    expect(await later).toBe(4);
  });

  it("keeps the others waiting when the failure is the item's own", async () => {
    const f = manualFlush();
    const gc = open(f);
    const first = settle(gc.submit(1));
    await waitFor("the first batch", () => f.batches.length === 1);
    const waiting = gc.submit(2);
    const own = new Error("refused");
    f.batches[0]!.fail(own);
    expect(await first).toBe(own);
    await waitFor("a second batch", () => f.batches.length === 2);
    expect(f.batches.map((b) => b.items)).toEqual([[1], [2]]);
    f.batches[1]!.finish();
    expect(await waiting).toBe(2);
  });

  it("still drains on close after sharing a failure", async () => {
    const f = manualFlush();
    const gc = open(f);
    const first = settle(gc.submit(1));
    await waitFor("the first batch", () => f.batches.length === 1);
    const waiting = settle(gc.submit(2));
    const closed = gc.close();
    f.batches[0]!.fail(down);
    expect(await Promise.all([first, waiting])).toEqual([down, down]);
    await closed;
  });
});

describe("which failures destroy a connection", () => {
  it("pg's own (a read timeout, a lost connection, a socket error), not the server's answers", () => {
    expect(isConnectionFailure(new Error("Query read timeout"))).toBe(true);
    expect(isConnectionFailure(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))).toBe(true);
    // statement_timeout and a constraint: the server answered, the connection is in step.
    const cancelled = new pg.DatabaseError("canceling statement due to statement timeout", 0, "error");
    cancelled.code = "57014";
    expect(isConnectionFailure(cancelled)).toBe(false);
    expect(isConnectionFailure(new Error("accept: no row for notification"))).toBe(false);
  });
});

describe("database configuration", () => {
  it("defaults answer a partition within 2 s, and five roles' pools fit in max_connections", () => {
    const { db, idempotencyTtlMs } = loadConfig({}, "production");
    expect(db).toEqual({ poolMax: 10, connectTimeoutMs: 1000, statementTimeoutMs: 1000, queryTimeoutMs: 1500 });
    expect(Math.max(db.connectTimeoutMs, db.queryTimeoutMs)).toBeLessThan(2000);
    expect(db.poolMax * 5).toBeLessThan(100);
    expect(idempotencyTtlMs).toBe(24 * 3600 * 1000);
  });

  it("refuses a statement timeout the client would give up before", () => {
    const env = { HERALD_DB_STATEMENT_TIMEOUT_MS: "3000", HERALD_DB_QUERY_TIMEOUT_MS: "2000" };
    expect(() => loadConfig(env, "production")).toThrow(ConfigError);
    expect(() => loadConfig(env, "production")).toThrow(/HERALD_DB_STATEMENT_TIMEOUT_MS/);
    expect(loadConfig({ ...env, HERALD_DB_QUERY_TIMEOUT_MS: "0" }, "production").db.queryTimeoutMs).toBe(0);
  });
});
