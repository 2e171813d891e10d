import type { LatencySummary } from "./result.js";

/** The q-quantile of ascending `sorted` (nearest rank); NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (n: number) => Math.round(n * 100) / 100;

/** Quantiles of `samples` (ms); sorts a copy. */
export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, x) => s + x, 0);
  return {
    n: sorted.length,
    p50: round(quantile(sorted, 0.5)),
    p95: round(quantile(sorted, 0.95)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? NaN),
    mean: round(sorted.length ? sum / sorted.length : NaN),
  };
}

/** At most `max` samples, evenly spaced over the sorted set (keeps the distribution's shape). */
export function downsample(samples: readonly number[], max = 20_000): number[] {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length <= max) return sorted;
  return Array.from({ length: max }, (_, i) => sorted[Math.floor((i * (sorted.length - 1)) / (max - 1))]!);
}

/** Counts per whole second since `t0` (ms timestamps): a throughput time series. */
export function perSecond(timestampsMs: readonly number[], t0: number): Array<[number, number]> {
  const counts = new Map<number, number>();
  let last = 0;
  for (const t of timestampsMs) {
    const s = Math.floor((t - t0) / 1000);
    if (s < 0) continue;
    counts.set(s, (counts.get(s) ?? 0) + 1);
    last = Math.max(last, s);
  }
  return Array.from({ length: last + 1 }, (_, s) => [s, counts.get(s) ?? 0] as [number, number]);
}
