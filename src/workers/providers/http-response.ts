import { PermanentError, TransientError } from "../../errors.js";
import type { Deadline } from "./deadline.js";
import { excerpt, NETWORK_FAILURES } from "./failure-text.js";

// How the HTTP adapters read what came back: the one place that turns an answer, or a fetch
// that got none, into TransientError or PermanentError. Error messages read "<provider>: <what
// happened>", hold at most a bounded excerpt of what the provider said, and never a configured
// secret.

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

/**
 * Any failure of fetch itself (no HTTP answer): transient, the next attempt may get through,
 * unless it was our own refusal to connect (a PermanentError, e.g. the webhook egress policy).
 */
export function fetchFailure(provider: string, err: unknown, d: Deadline, secrets: readonly string[]): TransientError | PermanentError {
  const aborted = d.abortError(provider, err);
  if (aborted) return aborted;
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (cause instanceof PermanentError) return new PermanentError(`${provider}: ${cause.message}`, { cause: err });
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

