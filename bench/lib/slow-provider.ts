import { randomBytes } from "node:crypto";
import { startChild } from "../processes.js";

// The 50 ms provider stand-in (bench/slow-provider-server.ts) as a child process, and the
// handles a scenario needs: the settings that point Herald's `twilio` adapter (or any other
// client of the same API) at it, and the arrival time of every message it received.

const entry = new URL("../slow-provider-server.js", import.meta.url).pathname;

export interface ProviderSettings {
  /** http://127.0.0.1:<port>, no trailing slash. */
  baseUrl: string;
  accountSid: string;
  authToken: string;
  /** The sender number every client sends as `From`. */
  from: string;
}

export interface Arrivals {
  /** Every Messages request, repeats included. */
  requests: number;
  /** Requests whose idempotency token had already arrived (a redelivery). */
  duplicates: number;
  /** First arrival per idempotency token: epoch ms (performance.timeOrigin + performance.now()). */
  at: Map<string, number>;
}

export interface SlowProvider extends ProviderSettings {
  /** What a Herald worker needs to send SMS through the stand-in (README, Providers). */
  heraldEnv: Record<string, string>;
  arrivals(): Promise<Arrivals>;
  /** Forgets every arrival (between measurements). */
  reset(): Promise<void>;
  /** Resolves once `n` distinct messages arrived; rejects after `timeoutMs` saying how many did. */
  waitForArrivals(n: number, timeoutMs: number): Promise<Arrivals>;
  stop(): Promise<void>;
}

/** Starts the stand-in answering every message after `delayMs` (50 by default). */
export async function startSlowProvider(opts: { delayMs?: number } = {}): Promise<SlowProvider> {
  const accountSid = `AC${randomBytes(16).toString("hex")}`;
  const authToken = randomBytes(16).toString("hex");
  const child = await startChild(
    [entry],
    { SLOW_PROVIDER_PORT: "0", SLOW_PROVIDER_DELAY_MS: String(opts.delayMs ?? 50), SLOW_PROVIDER_ACCOUNT_SID: accountSid, SLOW_PROVIDER_AUTH_TOKEN: authToken },
    /^listening \d+/,
  );
  const baseUrl = `http://127.0.0.1:${child.line.split(" ")[1]}`;
  const from = "+15005550006";

  async function arrivals(): Promise<Arrivals> {
    const res = await fetch(`${baseUrl}/_bench/arrivals`);
    const body = (await res.json()) as { requests: number; duplicates: number; arrivals: Array<[string, number]> };
    return { requests: body.requests, duplicates: body.duplicates, at: new Map(body.arrivals) };
  }

  return {
    baseUrl,
    accountSid,
    authToken,
    from,
    heraldEnv: { HERALD_SMS_PROVIDER: "twilio", TWILIO_BASE_URL: baseUrl, TWILIO_ACCOUNT_SID: accountSid, TWILIO_AUTH_TOKEN: authToken, HERALD_SMS_FROM: from },
    arrivals,
    async reset() {
      await (await fetch(`${baseUrl}/_bench/reset`, { method: "POST" })).arrayBuffer();
    },
    async waitForArrivals(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { distinct } = (await (await fetch(`${baseUrl}/_bench/count`)).json()) as { distinct: number };
        if (distinct >= n) return arrivals();
        if (Date.now() > deadline) throw new Error(`provider stand-in: ${distinct} of ${n} messages arrived within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: () => child.stop(),
  };
}
