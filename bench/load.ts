import * as grpc from "@grpc/grpc-js";

/** Result of one closed-loop load run. */
export interface LoadResult {
  concurrency: number;
  seconds: number;
  ok: number;
  errors: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * Closed-loop load: `concurrency` calls always in flight on one grpc-js
 * channel for `seconds`, after a warm-up; latencies in ms. `body(i)` gives the
 * serialized request for call i (so each call can carry unique data).
 */
export async function closedLoop(opts: {
  address: string;
  path: string;
  body: (i: number) => Buffer;
  metadata?: Record<string, string>;
  concurrency: number;
  seconds: number;
  warmupSeconds?: number;
}): Promise<LoadResult> {
  const client = new grpc.Client(opts.address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
  const id = (b: Buffer) => b;
  let i = 0;
  const call = () =>
    new Promise<boolean>((resolve) => {
      client.makeUnaryRequest(opts.path, id, id, opts.body(i++), md, { deadline: Date.now() + 10_000 }, (err) => resolve(!err));
    });

  const run = async (seconds: number, record: boolean) => {
    const latencies: number[] = [];
    let ok = 0;
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    const worker = async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const success = await call();
        if (!record) continue;
        if (success) {
          ok++;
          latencies.push(performance.now() - t0);
        } else errors++;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
    return { latencies, ok, errors, elapsed: (performance.now() - started) / 1000 };
  };

  await run(opts.warmupSeconds ?? 1, false);
  const r = await run(opts.seconds, true);
  client.close();
  r.latencies.sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    concurrency: opts.concurrency,
    seconds: round(r.elapsed),
    ok: r.ok,
    errors: r.errors,
    rps: Math.round(r.ok / r.elapsed),
    p50: round(quantile(r.latencies, 0.5)),
    p95: round(quantile(r.latencies, 0.95)),
    p99: round(quantile(r.latencies, 0.99)),
    max: round(r.latencies.at(-1) ?? NaN),
  };
}
