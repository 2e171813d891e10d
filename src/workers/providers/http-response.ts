import { PermanentError, TransientError } from "../../errors.js";
import { type Provider, type RenderedMessage, type SendResult } from "./provider.js";
import type { Clock } from "../../clock.js";

// What the HTTP adapters (twilio, fcm, webhook) share: one deadline per send, Node's own fetch
// with redirects refused, and one place that turns an answer or a failure into TransientError or
// PermanentError. Error messages read "<provider>: <what happened>", hold at most a bounded
// excerpt of what the provider said, and never a configured secret.

/** Longest excerpt of a provider's answer kept in an error message. */
export const EXCERPT_CHARS = 300;
/** Most bytes read from an answer; the rest is never downloaded (a receiver may answer with anything). */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * Retry-After (RFC 9110 §10.2.3) as milliseconds from `nowMs`: delta-seconds or an HTTP-date.
 * Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // Every HTTP-date form starts with a day name; this keeps Date.parse from reading "1.5" as a date.
  if (!/^[A-Za-z]{3}/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** One line of at most `max` characters, with every configured secret replaced. */
export function excerpt(text: string, secrets: readonly string[] = [], max = EXCERPT_CHARS): string {
  let s = text;
  for (const secret of secrets) if (secret) s = s.split(secret).join("[redacted]");
  s = s.replace(/[\s\p{Cc}]+/gu, " ").trim();
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** A send's own deadline joined with the caller's signal: whichever comes first aborts the work. */
export interface Deadline {
  signal: AbortSignal;
  /** The error for an abort: "timed out after N ms" when the deadline passed, "canceled" otherwise. */
  abortError(provider: string, cause: unknown): TransientError | undefined;
  /** Stops the timer and unhooks from the caller's signal; call it when the send is over. */
  dispose(): void;
}

// Not AbortSignal.any([caller, AbortSignal.timeout(ms)]): on Node 20 every any() stays referenced
// by a long-lived input signal (a worker's shutdown signal, passed to every send) until that one
// aborts; measured: 200k sends left 200k dependants and ~12 MB of heap after GC (nodejs/node#55351).
export function deadline(caller: AbortSignal, timeoutMs: number): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  timer.unref();
  const onAbort = () => controller.abort(caller.reason);
  if (caller.aborted) onAbort();
  else caller.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    abortError(provider, cause) {
      if (timedOut) return new TransientError(`${provider}: timed out after ${timeoutMs} ms`, { cause });
      if (caller.aborted) return new TransientError(`${provider}: canceled before the provider answered`, { cause });
      return undefined;
    },
    dispose() {
      clearTimeout(timer);
      caller.removeEventListener("abort", onAbort);
    },
  };
}

// Node's fetch (undici) reports a network failure as TypeError("fetch failed") with the socket
// error as its cause; these name the common ones in words.
export const NETWORK_FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  UND_ERR_SOCKET: "connection closed by the server",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "DNS lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/** Any failure of fetch itself (no HTTP answer): always transient, the next attempt may get through. */
export function fetchFailure(provider: string, err: unknown, d: Deadline, secrets: readonly string[]): TransientError {
  const aborted = d.abortError(provider, err);
  if (aborted) return aborted;
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === "string" ? cause.code : undefined;
  if (code) return new TransientError(`${provider}: ${NETWORK_FAILURES[code] ?? "request failed"} (${code})`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new TransientError(`${provider}: request failed: ${excerpt(message, secrets)}`, { cause: err });
}

/** An answer that is not 2xx, read enough to say why. */
export interface HttpFailure {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined. */
  json: unknown;
}

export interface ProviderErrorReader {
  /** The provider's own code and message from an error body, e.g. "error 21211: ...". */
  describe?(failure: HttpFailure): string | undefined;
  /** A provider code that decides the class whatever the HTTP status; undefined: decide by status. */
  classify?(failure: HttpFailure): "transient" | "permanent" | undefined;
}

/**
 * The error for a non-2xx answer. 3xx: permanent (a redirect is never followed: it could carry a
 * signed request somewhere else). 408, 429, 5xx: transient, honouring Retry-After. Other 4xx: permanent.
 */
export function httpFailure(provider: string, f: HttpFailure, nowMs: number, secrets: readonly string[], reader: ProviderErrorReader = {}): Error {
  if (f.status >= 300 && f.status < 400) return new PermanentError(`${provider}: redirects are refused (HTTP ${f.status})`);
  const said = excerpt(reader.describe?.(f) ?? f.text, secrets);
  const message = `${provider}: HTTP ${f.status}${said ? `: ${said}` : ""}`;
  const retriable = f.status === 408 || f.status === 429 || f.status >= 500;
  const kind = reader.classify?.(f) ?? (retriable ? "transient" : "permanent");
  if (kind === "permanent") return new PermanentError(message);
  return new TransientError(message, { retryAfterMs: parseRetryAfter(f.headers.get("retry-after"), nowMs) });
}

/** Reads at most MAX_BODY_BYTES of the body, then stops the download. */
export async function readBody(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_BODY_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString("utf8");
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** What an HTTP adapter says about one message: where and what to POST, and how to read its errors. */
export interface HttpRequestSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface HttpProviderOptions extends ProviderErrorReader {
  name: string;
  timeoutMs: number;
  /** Values that must never appear in an error message (tokens, signing secrets). */
  secrets: readonly string[];
  /** For Retry-After dates. */
  clock: Clock;
  /** The request for a message; throws PermanentError when the message cannot be sent this way. */
  request(message: RenderedMessage): HttpRequestSpec;
  /** The result from a 2xx answer; throws when the answer does not say what the provider accepted. */
  accepted(json: unknown, message: RenderedMessage): SendResult;
}

/**
 * A Provider that POSTs one request per message. close() refuses new sends and waits for the
 * ones in flight (each is bounded by its deadline); Node's fetch pools the connections itself.
 */
export function createHttpProvider(opts: HttpProviderOptions): Provider {
  const { name, secrets } = opts;
  const inflight = new Set<Promise<unknown>>();
  let closed = false;
  let closing: Promise<void> | undefined;

  async function post(message: RenderedMessage, caller: AbortSignal): Promise<SendResult> {
    const spec = opts.request(message);
    const d = deadline(caller, opts.timeoutMs);
    let status: number;
    let headers: Headers;
    let text: string;
    try {
      const res = await fetch(spec.url, { method: "POST", headers: spec.headers, body: spec.body, redirect: "manual", signal: d.signal });
      ({ status, headers } = res);
      text = await readBody(res);
    } catch (err) {
      throw fetchFailure(name, err, d, secrets);
    } finally {
      d.dispose();
    }
    const json = parseJson(text);
    if (status < 200 || status >= 300) throw httpFailure(name, { status, headers, text, json }, opts.clock.now(), secrets, opts);
    return opts.accepted(json, message);
  }

  return {
    name,
    send(message, signal) {
      if (closed) return Promise.reject(new TransientError(`${name}: provider is closed`));
      const p = post(message, signal);
      const forget = () => inflight.delete(p);
      p.then(forget, forget);
      inflight.add(p);
      return p;
    },
    close() {
      closed = true;
      closing ??= Promise.allSettled([...inflight]).then(() => {});
      return closing;
    },
  };
}
