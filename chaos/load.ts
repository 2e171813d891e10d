import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Channel, Code, ConnectError, type HeraldClient } from "../src/client/index.js";
import { backoffMs } from "../src/loop/backoff.js";

// Open-loop load, as a fleet of well-behaved clients would send it: requests start at a fixed
// rate whatever the server is doing (a closed loop would slow down exactly when the server is
// hurt, and hide the outage), each with its own idempotency key, and every call that failed in
// a way that says "try again" is retried under the SAME key until it is answered. So the soak
// can prove that a request answered OK was stored once and delivered, whatever was killed
// between its attempts.

/** Codes a client retries: the server or the path to it was down, overloaded or too slow. */
const RETRIABLE = new Set([Code.Unavailable, Code.ResourceExhausted, Code.DeadlineExceeded, Code.Canceled, Code.Unknown, Code.Aborted]);

export type Kind = "create" | "schedule";

/** One attempt of one request, as the client saw it. */
export interface Attempt {
  key: string;
  startedAt: number;
  answeredAt: number;
  /** "OK" or the gRPC code's name (UNAVAILABLE, INTERNAL, ...). */
  code: string;
}

/** One request (one idempotency key) and how it ended. */
export interface LoadRequest {
  key: string;
  kind: Kind;
  /** When its first attempt started. */
  issuedAt: number;
  /** Schedule only: the instant asked for (fixed across retries: the same request). */
  deliverAtMs?: number;
  attempts: number;
  /**
   * How it ended: answered OK, refused for good, or still being retried; "expired": a Schedule
   * whose retry came after the instant it asked for, which the server refuses (INVALID_ARGUMENT:
   * validation runs before the idempotency key is looked up), whether or not an earlier attempt
   * was stored.
   */
  outcome: "ok" | "refused" | "expired" | "pending";
  /** The code of a refusal. */
  refusedWith?: string;
  /** OK: the notification id it was answered with, and when. */
  id?: string;
  acceptedAt?: number;
}

export interface LoadOptions {
  client: HeraldClient;
  /** Requests started per second. */
  ratePerSecond: number;
  /** Share of requests that are Schedule (the rest Create). */
  scheduleFraction: number;
  /** How far ahead a Schedule asks for delivery, from its first attempt. */
  scheduleLeadMs: number;
  /** Each attempt's deadline (grpc-timeout). */
  callTimeoutMs: number;
  /** Distinct recipients the requests are spread over. */
  recipients: number;
  /** Prefix of every idempotency key (unique per run). */
  keyPrefix: string;
}

export interface Load {
  readonly requests: ReadonlyMap<string, LoadRequest>;
  readonly attempts: readonly Attempt[];
  /** The request (by notification id) answered OK with that id. */
  byId(id: string): LoadRequest | undefined;
  /** Stops starting requests; resolves once every request started has ended (or after `drainMs`). */
  stop(drainMs: number): Promise<void>;
}

const RETRY = { baseMs: 100, capMs: 2000 };

export function startLoad(opts: LoadOptions): Load {
  const requests = new Map<string, LoadRequest>();
  const byId = new Map<string, LoadRequest>();
  const attempts: Attempt[] = [];
  const running = new Set<Promise<void>>();
  let stopping = false;
  const startedAt = Date.now();
  let issued = 0;

  async function attempt(req: LoadRequest, n: number): Promise<void> {
    const user = `chaos-u${n % opts.recipients}`;
    const notification = {
      channel: Channel.SMS,
      recipient: { userId: user, address: { case: "phone" as const, value: `+1415${String(5_000_000 + (n % opts.recipients)).padStart(7, "0")}` } },
      body: { case: "content" as const, value: { text: `chaos ${req.key}` } },
    };
    const call = () =>
      req.kind === "create"
        ? opts.client.create({ notification, idempotencyKey: req.key }, { timeoutMs: opts.callTimeoutMs })
        : opts.client.schedule(
            { notification, idempotencyKey: req.key, when: { case: "deliverAt", value: timestampFromMs(req.deliverAtMs!) } },
            { timeoutMs: opts.callTimeoutMs },
          );
    for (;;) {
      req.attempts++;
      const began = Date.now();
      try {
        const { notification: stored } = await call();
        attempts.push({ key: req.key, startedAt: began, answeredAt: Date.now(), code: "OK" });
        req.outcome = "ok";
        req.id = stored?.id;
        req.acceptedAt = Date.now();
        if (req.id) byId.set(req.id, req);
        return;
      } catch (err) {
        const code = ConnectError.from(err).code;
        attempts.push({ key: req.key, startedAt: began, answeredAt: Date.now(), code: Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() });
        // INTERNAL is a bug on the server's side and fails the proof, but a client still retries
        // it (after a GOAWAY every call on the connection fails so), and the request must end.
        if (!RETRIABLE.has(code) && code !== Code.Internal) {
          // The server checked the time somewhere between the attempt's start and its answer.
          const late = req.deliverAtMs !== undefined && Date.now() >= req.deliverAtMs;
          req.outcome = code === Code.InvalidArgument && late ? "expired" : "refused";
          req.refusedWith = Code[code];
          return;
        }
        await sleep(Math.max(backoffMs(req.attempts, RETRY), retryAfterMs(err)));
      }
    }
  }

  function issue(): void {
    const n = issued++;
    // Spread evenly: request n is a Schedule when the running share of Schedules steps up at n.
    const kind: Kind = Math.floor((n + 1) * opts.scheduleFraction) > Math.floor(n * opts.scheduleFraction) ? "schedule" : "create";
    const now = Date.now();
    const req: LoadRequest = {
      key: `${opts.keyPrefix}-${n}`,
      kind,
      issuedAt: now,
      deliverAtMs: kind === "schedule" ? now + opts.scheduleLeadMs : undefined,
      attempts: 0,
      outcome: "pending",
    };
    requests.set(req.key, req);
    const run = attempt(req, n).finally(() => running.delete(run));
    running.add(run);
  }

  // Catch up to the rate on each tick: a tick delayed by a busy event loop issues what it owes.
  const ticker = setInterval(() => {
    if (stopping) return;
    const owed = Math.floor(((Date.now() - startedAt) / 1000) * opts.ratePerSecond) - issued;
    for (let i = 0; i < owed; i++) issue();
  }, 20);

  return {
    requests,
    attempts,
    byId: (id) => byId.get(id),
    async stop(drainMs) {
      stopping = true;
      clearInterval(ticker);
      const deadline = sleep(drainMs);
      await Promise.race([Promise.all(running), deadline]);
    },
  };
}

/** The server's retry hint on RESOURCE_EXHAUSTED (`retry-after-ms` trailer), else 0. */
function retryAfterMs(err: unknown): number {
  const hint = Number(ConnectError.from(err).metadata.get("retry-after-ms"));
  return Number.isFinite(hint) && hint > 0 ? hint : 0;
}
