import type { Clock } from "../../clock.js";
import { deadline } from "./deadline.js";
import type { FetchLike } from "./egress-fetch.js";
import { createInFlightSends } from "./in-flight.js";
import { fetchFailure, httpFailure, parseJson, readBody, type ProviderErrorReader } from "./http-response.js";
import { type Provider, type RenderedMessage, type SendResult } from "./provider.js";

// What the HTTP adapters (twilio, fcm, webhook) share: one POST per message under one deadline,
// Node's own fetch with redirects refused, and the answer read by http-response.ts.

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
  /** @defaultValue Node's fetch */
  fetch?: FetchLike;
  /** Runs after the sends in flight have ended on close() (e.g. closing the fetch's connection pool). */
  closed?(): Promise<void>;
}

/**
 * A Provider that POSTs one request per message. close() refuses new sends and waits for the
 * ones in flight (each is bounded by its deadline); Node's fetch pools the connections itself.
 */
export function createHttpProvider(opts: HttpProviderOptions): Provider {
  const { name, secrets } = opts;
  const sends = createInFlightSends(name);
  const send: FetchLike = opts.fetch ?? fetch;

  async function post(message: RenderedMessage, caller: AbortSignal): Promise<SendResult> {
    const spec = opts.request(message);
    const d = deadline(caller, opts.timeoutMs);
    let status: number;
    let headers: Headers;
    let text: string;
    try {
      const res = await send(spec.url, { method: "POST", headers: spec.headers, body: spec.body, redirect: "manual", signal: d.signal });
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
    send: (message, signal) => sends.run(() => post(message, signal)),
    close: async () => {
      await sends.close();
      await opts.closed?.();
    },
  };
}
