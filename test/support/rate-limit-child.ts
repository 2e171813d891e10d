import { createLogger } from "../../src/log.js";
import { createRedis } from "../../src/redis.js";
import { createRateLimiter } from "../../src/workers/rate-limit.js";

// One worker process's share of a rate-limit test (run from dist/ by test/rate-limit.test.ts):
// `concurrency` takers call take() as fast as they are let through from `startAt` until
// `startAt + durationMs`, then the process prints one JSON line with every grant time (ms since
// the epoch, this host's clock, which the parent shares) and exits.

export interface ChildParams {
  redisUrl: string;
  keyPrefix: string;
  name: string;
  perSecond: number;
  fallbackPerSecond: number;
  concurrency: number;
  /** Epoch ms; every child starts together. */
  startAt: number;
  durationMs: number;
}

export interface ChildResult {
  grants: number[];
}

const params = JSON.parse(process.env.RATE_LIMIT_CHILD ?? "null") as ChildParams | null;
if (!params) throw new Error("RATE_LIMIT_CHILD (JSON ChildParams) is required");

const log = createLogger({ level: "warn", role: "rate-limit-child" });
const redis = createRedis(params.redisUrl, log);
await redis.connect();
// Grant times on the limiter's own clock: it reads it right before each grant (and again in the
// same synchronous run), so a busy machine delaying this process's reaction cannot bunch them.
let lastReading = Date.now();
const limiter = createRateLimiter({ ...params, redis, log, clock: { now: () => (lastReading = Date.now()) } });

await new Promise((resolve) => setTimeout(resolve, Math.max(0, params.startAt - Date.now())));
const stop = AbortSignal.timeout(Math.max(1, params.startAt + params.durationMs - Date.now()));
const grants: number[] = [];
await Promise.all(
  Array.from({ length: params.concurrency }, async () => {
    while (!stop.aborted) {
      try {
        await limiter.take(stop);
      } catch {
        return; // the run is over
      }
      grants.push(lastReading);
    }
  }),
);
redis.disconnect();
const result: ChildResult = { grants };
process.stdout.write(`${JSON.stringify(result)}\n`);
