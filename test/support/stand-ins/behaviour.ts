import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

// What every stand-in shares: a programmable queue of behaviours (how to answer the next
// requests) and, for the HTTP ones, a real server on 127.0.0.1:0 that records every request and
// applies the queue in front of the stand-in's own handler, the way a load balancer or a failing
// provider would: a failure, a hang or a dropped socket happens before auth and validation;
// "ok" lets the stand-in answer as the provider does (auth checks, validation, success body).

/** SMTP only: the command a `fail` answers (default "rcpt"; 550 no such user is a RCPT TO reply). */
export type SmtpStage = "mail" | "rcpt" | "data";

export type Behaviour = (
  | { kind: "ok" }
  /** HTTP: answer `status` with `body` (object: JSON; string: text) and headers. SMTP: reply `status body`. */
  | { kind: "fail"; status: number; body?: unknown; headers?: Record<string, string>; at?: SmtpStage }
  /** Wait, then behave as `then`. */
  | { kind: "delay"; ms: number; then: Behaviour }
  /** Never answer (until the stand-in closes). */
  | { kind: "hang" }
  /** Destroy the connection without answering. */
  | { kind: "close" }
) & {
  /** How many requests (SMTP: messages) this entry applies to. @defaultValue 1 */
  times?: number;
};

/** The "fail" behaviour, whose fields a test may extend: `{ ...fail(421, "busy"), at: "mail" }`. */
export type FailBehaviour = Extract<Behaviour, { kind: "fail" }>;

export const ok = (): Behaviour => ({ kind: "ok" });
export const fail = (status: number, body?: unknown, headers?: Record<string, string>): FailBehaviour => ({ kind: "fail", status, body, headers });
export const hang = (): Behaviour => ({ kind: "hang" });
export const closeSocket = (): Behaviour => ({ kind: "close" });
export const delay = (ms: number, then: Behaviour = ok()): Behaviour => ({ kind: "delay", ms, then });
/** The same behaviour for the next `n` requests. */
export const times = (n: number, b: Behaviour): Behaviour => ({ ...b, times: n });
/** `status` (429 by default) with Retry-After as delta-seconds (a number) or an HTTP-date (a Date). */
export const retryAfter = (after: number | Date, status = 429, body?: unknown): FailBehaviour =>
  fail(status, body, { "retry-after": typeof after === "number" ? String(after) : after.toUTCString() });

/** Hands out behaviours in order; `fallback` (ok) once the queue is empty. */
export class BehaviourQueue {
  private queue: Behaviour[] = [];
  private fallback: Behaviour = ok();

  /** Replaces what is queued. */
  set(list: readonly Behaviour[], fallback: Behaviour = ok()): void {
    this.queue = list.map((b) => ({ ...b }));
    this.fallback = fallback;
  }

  next(): Behaviour {
    const head = this.queue[0];
    if (!head) return this.fallback;
    if ((head.times ?? 1) <= 1) this.queue.shift();
    else head.times = (head.times ?? 1) - 1;
    return head;
  }
}

export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  rawBody: string;
  /** JSON bodies parsed, form bodies as an object of strings, anything else the raw text. */
  body: unknown;
  receivedAt: Date;
  /** What the stand-in did with it. */
  behaviour: Behaviour["kind"];
}

export interface HttpAnswer {
  status: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string as text/plain; undefined: no body. */
  body?: unknown;
}

export interface HttpStandIn {
  /** http://127.0.0.1:<port>, no trailing slash: use it as the provider's base URL. */
  url: string;
  port: number;
  /** Every request received, in order, whatever it was answered. */
  requests: RecordedRequest[];
  /** Replaces the queue: the next requests get these behaviours in order, then `fallback` (ok). */
  behave(list: readonly Behaviour[], fallback?: Behaviour): void;
  /** Resolves once `n` requests in all have arrived; rejects after `timeoutMs` (5000). */
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  /** Stops listening and drops every connection, hung ones included. Idempotent. */
  close(): Promise<void>;
}

function parseBody(raw: string, contentType: string): unknown {
  if (contentType.includes("json")) {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return raw;
    }
  }
  if (contentType.startsWith("application/x-www-form-urlencoded")) return Object.fromEntries(new URLSearchParams(raw));
  return raw;
}

async function readRequest(req: IncomingMessage): Promise<RecordedRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const rawBody = Buffer.concat(chunks).toString("utf8");
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));
  return { method: req.method ?? "", path: req.url ?? "/", headers, rawBody, body: parseBody(rawBody, headers["content-type"] ?? ""), receivedAt: new Date(), behaviour: "ok" };
}

function write(res: ServerResponse, answer: HttpAnswer): void {
  const headers: Record<string, string> = { ...answer.headers };
  let body: string | undefined;
  if (typeof answer.body === "string") {
    body = answer.body;
    headers["content-type"] ??= "text/plain; charset=utf-8";
  } else if (answer.body !== undefined) {
    body = JSON.stringify(answer.body);
    headers["content-type"] ??= "application/json; charset=utf-8";
  }
  res.writeHead(answer.status, headers).end(body);
}

/**
 * A recording HTTP server on 127.0.0.1:0 whose answers come from the behaviour queue, then from
 * `handle` for "ok". The building block of the provider stand-ins.
 */
export async function startHttpStandIn(handle: (req: RecordedRequest) => HttpAnswer | Promise<HttpAnswer>): Promise<HttpStandIn> {
  const queue = new BehaviourQueue();
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();

  async function apply(b: Behaviour, req: RecordedRequest, res: ServerResponse): Promise<void> {
    switch (b.kind) {
      case "ok":
        return write(res, await handle(req));
      case "fail":
        return write(res, { status: b.status, headers: b.headers, body: b.body });
      case "delay":
        await sleep(b.ms);
        return apply(b.then, req, res);
      case "hang":
        return; // close() destroys the socket
      case "close":
        res.socket?.destroy();
        return;
    }
  }

  const server = createServer((req, res) => {
    void (async () => {
      const recorded = await readRequest(req);
      const b = queue.next();
      recorded.behaviour = b.kind;
      requests.push(recorded);
      for (const wake of waiters) wake();
      await apply(b, recorded, res);
    })().catch((err: unknown) => {
      if (!res.headersSent) write(res, { status: 500, body: `stand-in error: ${String(err)}` });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    behave: (list, fallback) => queue.set(list, fallback),
    waitForRequests: (n, timeoutMs = 5000) => waitForCount(requests, waiters, n, timeoutMs, "stand-in received", "requests"),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * Resolves with the first `n` items of `list` once it holds that many; `waiters` is the set the
 * stand-in calls after each arrival. Rejects after `timeoutMs`, saying how many arrived.
 */
export function waitForCount<T>(
  list: readonly T[],
  waiters: Set<() => void>,
  n: number,
  timeoutMs: number,
  what: string,
  noun: string,
): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (list.length < n) return;
      cleanup();
      resolve(list.slice(0, n));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} ${list.length} of ${n} ${noun} within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
    check();
  });
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released): connecting is refused. */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
