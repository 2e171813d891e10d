import pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors.js";
import { createDependencyWait, StartAborted, startWhenReachable } from "../../src/roles/dependency-wait.js";

/** A logger whose lines the test reads (pino, JSON, into an array). */
function recordingLog() {
  const lines: Array<{ msg: string; dependency?: string; failures?: number }> = [];
  const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
  return { log, lines };
}

/** Fails `times` times with `err`, then resolves `value`. */
function flaky<T>(times: number, err: () => unknown, value: T) {
  let calls = 0;
  return Object.assign(
    async () => {
      calls++;
      if (calls <= times) throw err();
      return value;
    },
    { calls: () => calls },
  );
}

const noWait = { baseMs: 1, capMs: 1 };
const refused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });

describe("createDependencyWait", () => {
  it("retries until the step succeeds, logging the outage once when it starts and once when it ends", async () => {
    const { log, lines } = recordingLog();
    const waitFor = createDependencyWait({ log, signal: new AbortController().signal, backoff: noWait });
    const step = flaky(5, () => new UnavailableError("kafka", "kafka unavailable: Connection error"), "topics");
    await expect(waitFor("kafka", step)).resolves.toBe("topics");
    expect(step.calls()).toBe(6);
    expect(lines.map((l) => [l.msg, l.dependency])).toEqual([
      ["waiting for kafka", "kafka"],
      ["kafka is back", "kafka"],
    ]);
    expect(lines[1]?.failures).toBe(5);
  });

  it("logs nothing when the dependency answers at once", async () => {
    const { log, lines } = recordingLog();
    const waitFor = createDependencyWait({ log, signal: new AbortController().signal, backoff: noWait });
    await waitFor("database", async () => "ok");
    expect(lines).toEqual([]);
  });

  it("logs a failure under the dependency its UnavailableError names, and ends that outage on success", async () => {
    const { log, lines } = recordingLog();
    const waitFor = createDependencyWait({ log, signal: new AbortController().signal, backoff: noWait });
    await waitFor("kafka", flaky(2, () => new UnavailableError("database", "database unavailable"), 1));
    expect(lines.map((l) => l.msg)).toEqual(["waiting for database", "database is back"]);
  });

  it("waits on socket errors and on PostgreSQL's 'not now' answers", async () => {
    const { log } = recordingLog();
    const waitFor = createDependencyWait({ log, signal: new AbortController().signal, backoff: noWait });
    const starting = () => Object.assign(new pg.DatabaseError("the database system is starting up", 0, "error"), { code: "57P03" });
    await expect(waitFor("database", flaky(2, refused, 1))).resolves.toBe(1);
    await expect(waitFor("database", flaky(2, starting, 2))).resolves.toBe(2);
    await expect(waitFor("database", flaky(2, () => new Error("timeout expired"), 3))).resolves.toBe(3);
  });

  it("gives up at once when PostgreSQL refuses for a reason waiting cannot fix (bad password)", async () => {
    const { log } = recordingLog();
    const waitFor = createDependencyWait({ log, signal: new AbortController().signal, backoff: noWait });
    const badPassword = Object.assign(new pg.DatabaseError('password authentication failed for user "herald"', 0, "error"), { code: "28P01" });
    const step = flaky(1, () => badPassword, 1);
    await expect(waitFor("database", step)).rejects.toBe(badPassword);
    expect(step.calls()).toBe(1);
  });

  it("rejects with StartAborted when the signal aborts, without waiting for the attempt in flight", async () => {
    const { log } = recordingLog();
    const stop = new AbortController();
    const waitFor = createDependencyWait({ log, signal: stop.signal, backoff: noWait });
    let attempted!: () => void;
    const attempting = new Promise<void>((r) => (attempted = r));
    const waiting = waitFor("kafka", () => {
      attempted();
      return new Promise<never>(() => {}); // a connect that never ends
    });
    await attempting;
    stop.abort();
    await expect(waiting).rejects.toBeInstanceOf(StartAborted);
  });

  it("rejects with StartAborted during the backoff pause", async () => {
    const { log, lines } = recordingLog();
    const stop = new AbortController();
    const waitFor = createDependencyWait({ log, signal: stop.signal, backoff: { baseMs: 60_000, capMs: 60_000 }, random: () => 0.99 });
    const waiting = waitFor("kafka", async () => {
      throw refused();
    });
    await expect.poll(() => lines.length).toBe(1); // failed once, now pausing
    stop.abort();
    await expect(waiting).rejects.toBeInstanceOf(StartAborted);
  });
});

describe("startWhenReachable", () => {
  it("builds a fresh one per attempt and closes each whose start failed", async () => {
    const { log } = recordingLog();
    const waitFor = createDependencyWait({ log, signal: new AbortController().signal, backoff: noWait });
    const made: Array<{ closed: boolean }> = [];
    const started = await startWhenReachable(waitFor, "kafka", () => {
      const n = made.length;
      const item = {
        closed: false,
        start: async () => {
          if (n < 2) throw new UnavailableError("kafka", "kafka unavailable");
        },
        close: async () => void (item.closed = true),
      };
      made.push(item);
      return item;
    });
    expect(made.map((m) => m.closed)).toEqual([true, true, false]);
    expect(started).toBe(made[2]);
  });
});
