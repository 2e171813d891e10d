// What every benchmark scenario returns. The runner (bench/run.ts) collects these into
// bench/results/<date>-<machine>.json, a markdown summary and PNG charts; docs/benchmarks.md
// shows them. Every figure says how it was produced (`command`), so anyone can rerun it.

/** Latency quantiles of one series, in milliseconds. */
export interface LatencySummary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** One row of a scenario's table: a named measurement and its numbers. */
export interface Figure {
  /** e.g. "Create over grpc-js, 50 in flight". */
  name: string;
  /** Requests/s, deliveries/s, records/s... with its unit. */
  throughput?: { value: number; unit: string };
  latency?: LatencySummary;
  errors?: number;
  /** Anything else worth a column: memory, counts, offered rate. */
  extra?: Record<string, number | string>;
}

/** Raw latency samples kept for the distribution chart (downsampled by the scenario to ≤ 20,000). */
export interface LatencySeries {
  name: string;
  samplesMs: number[];
}

/** Throughput over time for the time-series chart: one point per second. */
export interface TimeSeries {
  name: string;
  unit: string;
  /** [seconds since the series started, value]. */
  points: Array<[number, number]>;
}

/** Herald's figure as a share of a reference measured in the same run. */
export interface Ratio {
  name: string;
  /** herald / reference, e.g. 0.42. */
  value: number;
  herald: string;
  reference: string;
}

/** A target from the benchmark issue, and whether this run met it. */
export interface TargetCheck {
  name: string;
  target: string;
  actual: string;
  met: boolean;
}

export interface ScenarioResult {
  /** Short stable id: "ceilings", "create", "e2e", "scheduling", "fanout", "alternatives". */
  id: string;
  title: string;
  /** The command that reproduces it, e.g. "npm run bench -- --only create". */
  command: string;
  /** How the load was generated (h2load with its flags, or the Node generator). */
  method: string;
  figures: Figure[];
  latencies?: LatencySeries[];
  timeseries?: TimeSeries[];
  ratios?: Ratio[];
  targets?: TargetCheck[];
  /** What a reader must know to trust or read the numbers (bottlenecks, caveats). */
  notes?: string[];
}

/** Reports progress while a scenario runs (the runner draws it). */
export interface Progress {
  /** The current step, e.g. "Create c=50: 4,120 req/s". */
  step(text: string): void;
}

/** What a scenario gets from the runner. */
export interface ScenarioContext {
  quick: boolean;
  progress: Progress;
  /** Unique per run: database names, topic prefixes and ports derive from it. */
  runId: string;
}

export type Scenario = (ctx: ScenarioContext) => Promise<ScenarioResult>;
