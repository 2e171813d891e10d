import { randomBytes } from "node:crypto";
import { getEventListeners } from "node:events";
import { statSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../src/log.js";
import { createRedis } from "../src/redis.js";
import { createRateLimiter, type RateLimiter, type RateLimiterOptions } from "../src/workers/rate-limit.js";
import { slotQuota } from "../src/workers/rate-slots.js";
import { REPO, runCommand } from "./support/processes.js";
import type { ChildParams, ChildResult } from "./support/rate-limit-child.js";

// The provider rate limiter against the real Redis, one key prefix per test. Grants are counted
// the way a provider counts requests: by the time they arrive (here: when take() resolved), in
// every 1-second window. The design (src/workers/rate-limit.ts) promises at most N in any window
// starting on a 100 ms boundary of the shared clock, wall-clock seconds among them, and at most
// N + ceil(N/10) in any 1-second window at all; the tests hold it to the latter, which is what a
// provider whose second starts anywhere, or that uses a sliding window, would see.

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const N = 20;
const TOLERANCE = Math.ceil(N / 10);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An ioredis client that counts the commands it sends: handed to the limiter in place of the plain one. */
class CountingRedis extends Redis {
  commands = 0;
  override sendCommand(...args: Parameters<Redis["sendCommand"]>): unknown {
    this.commands++;
    return super.sendCommand(...args);
  }
}

async function redisClient(): Promise<CountingRedis> {
  const redis = new CountingRedis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  await redis.connect();
  cleanups.push(() => redis.disconnect());
  redis.commands = 0; // the connection handshake is not the limiter's
  return redis;
}

interface LogLine {
  level: number;
  msg: string;
  limiter?: string;
}

function capturingLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

const FALLBACK_MSG = "rate limiter cannot reach redis; limiting this process alone";
const RESTORED_MSG = "rate limiter reached redis again; shared limit restored";

function limiterOpts(over: Partial<RateLimiterOptions> & Pick<RateLimiterOptions, "redis" | "log">): RateLimiterOptions {
  return { name: "provider", perSecond: N, fallbackPerSecond: N / 2, keyPrefix: `t${randomBytes(5).toString("hex")}:rl:`, ...over };
}

// The limiter reads its clock right before it hands out a grant (and again, in the same
// synchronous run, for the next slot), so its last reading is the grant's time by the limiter's
// own clock. A busy machine can delay this process's reaction to a grant and bunch the
// reactions up; the limiter's clock is what its guarantee is about.
const lastReading = new WeakMap<RateLimiter, () => number>();

/** createRateLimiter, with its clock readings kept for `drive`. */
function stampedLimiter(opts: RateLimiterOptions): RateLimiter {
  let last = Date.now();
  const limiter = createRateLimiter({ ...opts, clock: { now: () => (last = Date.now()) } });
  lastReading.set(limiter, () => last);
  return limiter;
}

/** `concurrency` callers taking as fast as they are let through until `until` (epoch ms); the grant times. `high`: PRIORITY_HIGH takes. */
async function drive(limiter: RateLimiter, concurrency: number, until: number, high = false): Promise<number[]> {
  const stamp = lastReading.get(limiter) ?? Date.now;
  const stop = AbortSignal.timeout(Math.max(1, until - Date.now()));
  const grants: number[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop.aborted) {
        try {
          await limiter.take(stop, { high });
        } catch {
          return;
        }
        grants.push(stamp());
      }
    }),
  );
  return grants;
}

/** The most grants in any 1-second window [t, t + 1000): the busiest one starts at a grant. */
function busiestSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + 1000) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

/** Grants per wall-clock second, for the report. */
function perWallSecond(times: number[]): number[] {
  const counts = new Map<number, number>();
  for (const t of times) counts.set(Math.floor(t / 1000), (counts.get(Math.floor(t / 1000)) ?? 0) + 1);
  return [...counts.entries()].sort(([a], [b]) => a - b).map(([, n]) => n);
}

/** The next whole second at least `leadMs` from now, so runs start on a wall-clock second. */
function nextSecond(leadMs: number): number {
  return Math.ceil((Date.now() + leadMs) / 1000) * 1000;
}

describe("slot quotas", () => {
  it("give exactly N to every 10 consecutive slots, never more than ceil(N/10) to one", () => {
    const epochSlot = Math.floor(Date.UTC(2030, 0, 1) / 100);
    for (const n of [1, 2, 3, 7, 10, 15, 20, 99, 1000, 1_000_000]) {
      for (const start of [0, 3, epochSlot, epochSlot + 7]) {
        const quotas = Array.from({ length: 10 }, (_, i) => slotQuota(n, start + i));
        expect(quotas.reduce((a, b) => a + b), `N=${n} from slot ${start}`).toBe(n);
        for (const q of quotas) expect([Math.floor(n / 10), Math.ceil(n / 10)]).toContain(q);
      }
    }
  });
});

describe("shared rate limit", () => {
  it("holds N per second across two connections, without starving either", async () => {
    const { log } = capturingLogger();
    const opts = limiterOpts({ redis: await redisClient(), log });
    const a = stampedLimiter(opts);
    const b = stampedLimiter({ ...opts, redis: await redisClient() });
    const startAt = nextSecond(200);
    await sleep(startAt - Date.now());
    const seconds = 6;
    const [ga, gb] = await Promise.all([drive(a, 8, startAt + seconds * 1000), drive(b, 8, startAt + seconds * 1000)]);
    const all = [...ga, ...gb];
    const report = `busiest second ${busiestSecond(all)}, per wall-clock second ${perWallSecond(all).join(",")}, a ${ga.length} b ${gb.length}`;
    expect(busiestSecond(all), report).toBeLessThanOrEqual(N + TOLERANCE);
    expect(all.length, report).toBeGreaterThanOrEqual(0.8 * N * seconds);
    // Neither limiter is shut out by the other.
    expect(Math.min(ga.length, gb.length), report).toBeGreaterThanOrEqual(0.2 * all.length);
  });

  it("holds N per second across two worker processes", async () => {
    // The child runs from dist/ (Node 20 cannot run TypeScript); `npm test` builds it first.
    const child = join(REPO, "dist/test/support/rate-limit-child.js");
    for (const [source, built] of [
      ["test/support/rate-limit-child.ts", child],
      ["src/workers/rate-limit.ts", join(REPO, "dist/src/workers/rate-limit.js")],
    ] as const) {
      const stale = statSync(built, { throwIfNoEntry: false });
      if (!stale || stale.mtimeMs < statSync(join(REPO, source)).mtimeMs) throw new Error(`${built} is missing or older than ${source}: run npm run build`);
    }
    const seconds = 6;
    const params: ChildParams = {
      redisUrl: REDIS_URL,
      keyPrefix: `t${randomBytes(5).toString("hex")}:rl:`,
      name: "provider",
      perSecond: N,
      fallbackPerSecond: N / 2,
      concurrency: 16,
      startAt: nextSecond(3000), // time for both processes to start and connect
      durationMs: seconds * 1000,
    };
    const runs = await Promise.all(
      ["one", "two"].map((name) =>
        runCommand(process.execPath, [child], { env: { RATE_LIMIT_CHILD: JSON.stringify(params) }, timeoutMs: 30_000, name }),
      ),
    );
    const grants = runs.map((run) => {
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      return (JSON.parse(run.stdout.trim().split("\n").at(-1)!) as ChildResult).grants;
    });
    const all = grants.flat();
    const report = `busiest second ${busiestSecond(all)}, per wall-clock second ${perWallSecond(all).join(",")}, per process ${grants.map((g) => g.length).join("/")}`;
    expect(busiestSecond(all), report).toBeLessThanOrEqual(N + TOLERANCE);
    expect(all.length, report).toBeGreaterThanOrEqual(0.8 * N * seconds);
    expect(Math.min(...grants.map((g) => g.length)), report).toBeGreaterThanOrEqual(0.2 * all.length);
  });

  it("spreads a burst that arrives just before a second ends", async () => {
    // A plain 1-second window opened by the first take lets N through at its end and N more at
    // the start of the next one: 2N within milliseconds. The slots spread the burst instead.
    const { log } = capturingLogger();
    const limiter = stampedLimiter(limiterOpts({ redis: await redisClient(), log }));
    const first = new AbortController();
    await limiter.take(first.signal);
    const opened = Date.now();
    await sleep(900);
    const stop = AbortSignal.timeout(3000);
    const grants = [opened];
    await Promise.all(
      Array.from({ length: 2 * N }, async () => {
        await limiter.take(stop);
        grants.push(Date.now());
      }),
    );
    expect(busiestSecond(grants), `per wall-clock second ${perWallSecond(grants).join(",")}`).toBeLessThanOrEqual(N + TOLERANCE);
    expect(grants).toHaveLength(2 * N + 1);
  });

  it("does not wait or touch Redis when the limit is 0", async () => {
    const redis = await redisClient();
    const limiter = stampedLimiter(limiterOpts({ redis, log: capturingLogger().log, perSecond: 0 }));
    const signal = new AbortController().signal;
    const takes = Promise.all(Array.from({ length: 1000 }, () => limiter.take(signal))).then(() => "all granted");
    // Before any timer or I/O callback runs: no waiting at all.
    const first = await Promise.race([takes, new Promise((resolve) => setImmediate(() => resolve("had to wait")))]);
    expect(first).toBe("all granted");
    expect(redis.commands).toBe(0);
  });

  it("rejects with the signal's reason, promptly, and keeps serving the others", async () => {
    const redis = await redisClient();
    const limiter = stampedLimiter(limiterOpts({ redis, log: capturingLogger().log, perSecond: 1 }));
    const forever = new AbortController().signal;
    await limiter.take(forever); // the second's one send
    const waiting = new AbortController();
    const blocked = Array.from({ length: 50 }, () => limiter.take(waiting.signal));
    const behind = limiter.take(forever);
    // Fifty waiters on one signal (a worker's shutdown signal, typically) hold one listener.
    expect(getEventListeners(waiting.signal, "abort")).toHaveLength(1);
    await sleep(100);
    const reason = new Error("shutting down");
    waiting.abort(reason);
    // The rejections must not wait for the next grant: they settle before the waiter behind
    // them is granted (an order of events, whatever the machine's speed).
    const settled = Promise.allSettled(blocked);
    const first = await Promise.race([settled.then(() => "rejected"), behind.then(() => "granted")]);
    expect(first).toBe("rejected");
    expect(await settled).toEqual(blocked.map(() => ({ status: "rejected", reason })));
    // The waiter behind them gets the next grant (a hang would time the test out), and nothing stays subscribed.
    await behind;
    expect(getEventListeners(forever, "abort")).toHaveLength(0);
    // An already aborted signal rejects at once, without a Redis call.
    const before = redis.commands;
    await expect(limiter.take(AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(redis.commands).toBe(before);
  });

  it("makes a handful of Redis calls, not a loop, while blocked", async () => {
    const redis = await redisClient();
    const limiter = stampedLimiter(limiterOpts({ redis, log: capturingLogger().log, perSecond: 1 }));
    // 32 callers against one send per second for 2.5 s: blocked nearly all the time.
    const grants = await drive(limiter, 32, Date.now() + 2500);
    expect(grants.length).toBeGreaterThanOrEqual(2);
    // The only slot with quota opens 2 or 3 times: one grant and at most one refusal each
    // (plus one EVAL when Redis does not have the script cached yet).
    expect(redis.commands, `grants ${grants.length}`).toBeLessThanOrEqual(2 * 3 + 1);
  });

  it("reports each take that had to wait, and only those: 10/s is one per 100 ms slot, so of 5 at once 4 wait", async () => {
    const waits: number[] = [];
    const limiter = createRateLimiter(limiterOpts({ redis: await redisClient(), log: capturingLogger().log, perSecond: 10, onWait: (s) => void waits.push(s) }));
    const signal = new AbortController().signal;
    await Promise.all(Array.from({ length: 5 }, () => limiter.take(signal)));
    expect(waits).toHaveLength(4);
    for (const s of waits) expect(s).toBeGreaterThan(0);
    // A limit of 0 never waits, so it never reports one.
    const unlimited = createRateLimiter(limiterOpts({ redis: await redisClient(), log: capturingLogger().log, perSecond: 0, onWait: (s) => void waits.push(s) }));
    await Promise.all(Array.from({ length: 50 }, () => unlimited.take(signal)));
    expect(waits).toHaveLength(4);
  });

  it("rejects limits it cannot honour", () => {
    const log = capturingLogger().log;
    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    expect(() => createRateLimiter({ redis, log, name: "x", perSecond: 1.5, fallbackPerSecond: 1 })).toThrow(
      "rate limiter x: perSecond must be an integer >= 0, got 1.5",
    );
    expect(() => createRateLimiter({ redis, log, name: "x", perSecond: 10, fallbackPerSecond: Number.NaN })).toThrow(
      "rate limiter x: fallbackPerSecond must be a finite number >= 0, got NaN",
    );
    redis.disconnect();
  });
});

describe("a share reserved for high priority", () => {
  // N = 20 with a quarter reserved: normal and low priority may take 15 a second, high all 20.
  const SHARE = 0.25;
  const NORMAL = Math.floor(N * (1 - SHARE));

  it("under a saturating normal load in another process, high-priority takes still get their share, and the total holds N", async () => {
    const { log } = capturingLogger();
    const opts = limiterOpts({ redis: await redisClient(), log, highShare: SHARE });
    // Two connections, as two worker processes would have: one flooded with normal sends, one with high.
    const normal = stampedLimiter(opts);
    const high = stampedLimiter({ ...opts, redis: await redisClient() });
    const startAt = nextSecond(200);
    await sleep(startAt - Date.now());
    const seconds = 5;
    const until = startAt + seconds * 1000;
    const [gn, gh] = await Promise.all([drive(normal, 16, until), drive(high, 8, until, true)]);
    const all = [...gn, ...gh];
    const report = `normal ${gn.length} (busiest ${busiestSecond(gn)}), high ${gh.length} (busiest ${busiestSecond(gh)}), all busiest ${busiestSecond(all)}`;
    expect(busiestSecond(all), report).toBeLessThanOrEqual(N + TOLERANCE);
    expect(busiestSecond(gn), report).toBeLessThanOrEqual(NORMAL + Math.ceil(NORMAL / 10));
    // The reserved share is the high side's at least (minus the first second's partial slots);
    // high may take more (all that normal leaves), and together they use the whole limit.
    expect(gh.length, report).toBeGreaterThanOrEqual((N - NORMAL) * (seconds - 1));
    expect(all.length, report).toBeGreaterThanOrEqual(0.8 * N * seconds);
  });

  it("serves a process's high-priority waiters before its normal ones, up to the whole limit", async () => {
    const { log } = capturingLogger();
    const limiter = stampedLimiter(limiterOpts({ redis: await redisClient(), log, highShare: SHARE }));
    const startAt = nextSecond(200);
    await sleep(startAt - Date.now());
    const seconds = 4;
    const until = startAt + seconds * 1000;
    const [gn, gh] = await Promise.all([drive(limiter, 16, until), drive(limiter, 16, until, true)]);
    const report = `normal ${gn.length}, high ${gh.length}, busiest ${busiestSecond([...gn, ...gh])}`;
    expect(busiestSecond([...gn, ...gh]), report).toBeLessThanOrEqual(N + TOLERANCE);
    // High takes never run out here, so they get nearly everything; normal gets what they leave.
    expect(gh.length, report).toBeGreaterThanOrEqual(0.8 * N * seconds);
    expect(gn.length, report).toBeLessThan(gh.length / 4);
  });

  it("without high-priority takes, normal ones get (1 - share) of the limit, not all of it", async () => {
    const { log } = capturingLogger();
    const limiter = stampedLimiter(limiterOpts({ redis: await redisClient(), log, highShare: SHARE }));
    const startAt = nextSecond(200);
    await sleep(startAt - Date.now());
    const seconds = 4;
    const grants = await drive(limiter, 16, startAt + seconds * 1000);
    const report = `grants ${grants.length}, busiest ${busiestSecond(grants)}`;
    expect(busiestSecond(grants), report).toBeLessThanOrEqual(NORMAL + Math.ceil(NORMAL / 10));
    expect(grants.length, report).toBeGreaterThanOrEqual(0.8 * NORMAL * seconds);
  });

  it("rejects a share it cannot honour", () => {
    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    const log = capturingLogger().log;
    for (const highShare of [1, -0.1, Number.NaN]) {
      expect(() => createRateLimiter({ redis, log, name: "x", perSecond: 10, fallbackPerSecond: 5, highShare })).toThrow(
        `rate limiter x: highShare must be in [0, 1), got ${highShare}`,
      );
    }
    redis.disconnect();
  });
});

describe("without Redis", () => {
  const FALLBACK = 5;

  it("limits each process to the fallback rate and says so once", async () => {
    const { log, lines } = capturingLogger();
    // The production client's options (src/redis.ts), pointed where nothing listens.
    const redis = createRedis("redis://127.0.0.1:1", log);
    redis.connect().catch(() => {});
    cleanups.push(() => redis.disconnect());
    const limiter = stampedLimiter(limiterOpts({ redis, log, fallbackPerSecond: FALLBACK }));
    const startAt = nextSecond(200);
    await sleep(startAt - Date.now());
    const seconds = 3;
    const grants = await drive(limiter, 8, startAt + seconds * 1000);
    const report = `busiest second ${busiestSecond(grants)}, per wall-clock second ${perWallSecond(grants).join(",")}`;
    expect(busiestSecond(grants), report).toBeLessThanOrEqual(FALLBACK + Math.ceil(FALLBACK / 10));
    expect(grants.length, report).toBeGreaterThanOrEqual(0.8 * FALLBACK * seconds);
    expect(lines.filter((l) => l.msg === FALLBACK_MSG)).toEqual([expect.objectContaining({ level: 40, limiter: "provider" })]);
    expect(lines.filter((l) => l.msg === RESTORED_MSG)).toEqual([]);
  });

  for (const outage of ["refused", "silent"] as const) {
    it(`falls back while Redis is ${outage === "refused" ? "gone" : "not answering"} and returns to the shared limit after`, async () => {
      const { log, lines } = capturingLogger();
      const url = new URL(REDIS_URL);
      const proxy = await startProxy({ host: url.hostname, port: Number(url.port || 6379) });
      cleanups.push(() => proxy.close());
      const redis = createRedis(`redis://127.0.0.1:${proxy.port}`, log);
      await redis.connect();
      cleanups.push(() => redis.disconnect());
      const limiter = stampedLimiter(
        limiterOpts({ redis, log, fallbackPerSecond: FALLBACK, redisTimeoutMs: 200, probeIntervalMs: 200 }),
      );
      const grants: number[] = [];
      const stop = new AbortController();
      cleanups.push(() => stop.abort());
      const driving = Promise.all(
        Array.from({ length: 8 }, async () => {
          for (;;) {
            await limiter.take(stop.signal);
            grants.push(Date.now());
          }
        }),
      ).catch(() => {});

      await sleep(1500);
      const cutAt = Date.now();
      await (outage === "refused" ? proxy.cut() : proxy.stall());
      await expect.poll(() => lines.filter((l) => l.msg === FALLBACK_MSG).length, { timeout: 5000 }).toBe(1);
      const fellBackAt = Date.now();
      await sleep(2500);
      const restoreAt = Date.now();
      await proxy.restore();
      await expect.poll(() => lines.filter((l) => l.msg === RESTORED_MSG).length, { timeout: 10_000 }).toBe(1);
      const restoredAt = Date.now();
      await sleep(1500);
      stop.abort();
      await driving;

      const between = (from: number, to: number) => grants.filter((t) => t >= from && t < to);
      const report = `per wall-clock second ${perWallSecond(grants).join(",")}; cut +${fellBackAt - cutAt} ms, restored +${restoredAt - restoreAt} ms`;
      // Before the outage: the shared limit.
      expect(busiestSecond(between(0, cutAt)), report).toBeGreaterThan(FALLBACK + 1);
      // During it: the fallback rate, neither stuck nor unlimited.
      const during = between(fellBackAt, restoreAt);
      expect(busiestSecond(during), report).toBeLessThanOrEqual(FALLBACK + Math.ceil(FALLBACK / 10));
      expect(during.length, report).toBeGreaterThanOrEqual(0.8 * FALLBACK * 2);
      // After: the shared limit again, still within it.
      const after = between(restoredAt, Infinity);
      expect(busiestSecond(after), report).toBeGreaterThan(FALLBACK + 1);
      expect(busiestSecond(after), report).toBeLessThanOrEqual(N + TOLERANCE);
      // Each transition logged once, not per call.
      expect(lines.filter((l) => l.msg === FALLBACK_MSG), report).toHaveLength(1);
      expect(lines.filter((l) => l.msg === RESTORED_MSG), report).toHaveLength(1);
    });
  }
});

/**
 * A TCP proxy to Redis that can refuse (connections dropped, new ones refused) or go silent
 * (connections stay open, bytes are held both ways: a hung server or a partition), then recover
 * (what was held is delivered, as when the server wakes up).
 */
async function startProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  const held: Array<() => void> = [];
  let silent = false;
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const s = createServer((down) => {
      const up = connect(target.port, target.host);
      for (const [from, to] of [
        [down, up],
        [up, down],
      ] as const) {
        sockets.add(from);
        from.on("error", () => {});
        from.on("close", () => {
          sockets.delete(from);
          to.destroy();
        });
        from.on("data", (chunk: Buffer) => {
          const forward = () => void (to.destroyed || to.write(chunk));
          if (silent) held.push(forward);
          else forward();
        });
      }
    });
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => resolve());
    });
    port = (s.address() as { port: number }).port;
    server = s;
  };
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s) await new Promise((resolve) => s.close(resolve));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    cut,
    stall: () => {
      silent = true;
    },
    async restore() {
      silent = false;
      for (const forward of held.splice(0)) forward();
      if (!server) await listen();
    },
    close: cut,
  };
}
