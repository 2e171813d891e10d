import http from "node:http";

// The Node load generator for the HTTP/1.1 JSON APIs compared in the alternatives scenario (the
// synchronous endpoint, BullMQ's producer, Herald's Connect endpoint): the same client, keep-alive
// sockets and JSON for all three, so the comparison is of the servers, not of the clients.

/** Epoch milliseconds, sub-ms, comparable across processes (see bench/slow-provider-server.ts). */
export const epochMs = () => performance.timeOrigin + performance.now();

export interface Target {
  /** http://host:port/path */
  url: string;
  headers?: Record<string, string>;
  /** The JSON body of request i (unique data per request). */
  body(i: number): string;
  /** The id in a 200 answer that the provider will see as idempotency token (for end-to-end latency). */
  idOf?(json: unknown): string | undefined;
}

export interface LoadRun {
  ok: number;
  errors: number;
  /** Seconds from the first request to the last answer. */
  elapsedS: number;
  /** Milliseconds per successful request (open loop: from when it was due, not when it went out). */
  latencies: number[];
  /** id → epoch ms when its request was due/sent (only with `idOf`). */
  sent: Map<string, number>;
  /** The first error's description, for the notes. */
  firstError?: string;
}

function post(agent: http.Agent, url: URL, headers: Record<string, string>, body: string, wantBody: boolean): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers }, timeout: 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => void (wantBody || res.statusCode !== 200 ? chunks.push(c) : undefined));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out after 30 s")));
    req.on("error", reject);
    req.end(body);
  });
}

function recorder(target: Target) {
  const run: LoadRun = { ok: 0, errors: 0, elapsedS: 0, latencies: [], sent: new Map() };
  const url = new URL(target.url);
  const headers = target.headers ?? {};
  return {
    run,
    /** One request; `t0` is when it was due (epoch ms). */
    one: async (agent: http.Agent, i: number, t0: number, record: boolean): Promise<void> => {
      try {
        const res = await post(agent, url, headers, target.body(i), target.idOf !== undefined);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 200)}`);
        if (!record) return;
        run.ok++;
        run.latencies.push(epochMs() - t0);
        const id = target.idOf?.(JSON.parse(res.text));
        if (id) run.sent.set(id, t0);
      } catch (err) {
        if (!record) return;
        run.errors++;
        run.firstError ??= err instanceof Error ? err.message : String(err);
      }
    },
  };
}

/**
 * Closed loop: `concurrency` requests always in flight for `seconds` after a warm-up, or until
 * `count` requests were made (whichever ends first). Request numbers start at `firstIndex`.
 */
export async function closedLoop(
  target: Target,
  opts: { concurrency: number; seconds: number; warmupSeconds?: number; count?: number; firstIndex?: number },
): Promise<LoadRun> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const { run, one } = recorder(target);
  let i = opts.firstIndex ?? 0;
  const phase = async (seconds: number, record: boolean, limit: number) => {
    const end = performance.now() + seconds * 1000;
    let made = 0;
    const loop = async () => {
      while (performance.now() < end && made < limit) {
        made++;
        await one(agent, i++, epochMs(), record);
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, loop));
  };
  try {
    if (opts.warmupSeconds) await phase(opts.warmupSeconds, false, Infinity);
    const started = performance.now();
    await phase(opts.seconds, true, opts.count ?? Infinity);
    run.elapsedS = (performance.now() - started) / 1000;
  } finally {
    agent.destroy();
  }
  return run;
}

/**
 * Open loop: one request every 1/rate s for `seconds`, whatever the answers do (at most
 * `maxInFlight` sockets; beyond that requests wait, and their wait counts in their latency).
 */
export async function openLoop(target: Target, opts: { rate: number; seconds: number; firstIndex?: number; maxInFlight?: number }): Promise<LoadRun> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxInFlight ?? 512 });
  const { run, one } = recorder(target);
  const total = Math.round(opts.rate * opts.seconds);
  const inFlight: Array<Promise<void>> = [];
  const start = epochMs();
  try {
    for (let n = 0; n < total; ) {
      const now = epochMs();
      // Everything due by now goes out now: a late timer must not lower the offered rate.
      for (; n < total && start + (n * 1000) / opts.rate <= now; n++) inFlight.push(one(agent, (opts.firstIndex ?? 0) + n, start + (n * 1000) / opts.rate, true));
      const next = start + (n * 1000) / opts.rate - epochMs();
      if (next > 0) await new Promise((r) => setTimeout(r, Math.max(1, Math.floor(next))));
    }
    await Promise.all(inFlight);
    run.elapsedS = (epochMs() - start) / 1000;
  } finally {
    agent.destroy();
  }
  return run;
}
