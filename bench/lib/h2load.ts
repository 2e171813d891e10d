import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LatencySummary } from "./result.js";
import { perSecond, summarize } from "./stats.js";

// Load from h2load (Debian's nghttp2-client), a real HTTP/2 client none of us wrote. It knows
// nothing of gRPC: it sends the same pre-framed body every time and counts HTTP statuses, and a
// gRPC error still arrives as HTTP 200 with grpc-status in the trailers. So every caller checks
// success another way (a server-side counter, rows in PostgreSQL) and says which in its notes.

export const H2LOAD = process.env.BENCH_H2LOAD ?? "/usr/bin/h2load";

/** The gRPC length-prefixed message: flag 0 (uncompressed), big-endian length, the bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

export const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" };

export interface H2loadOptions {
  /** http://host:port/path (h2c, prior knowledge). */
  url: string;
  /** The request body sent every time, already framed as the protocol wants. */
  body: Uint8Array;
  headers?: Record<string, string>;
  /** Header values shown as given here in `command` (secrets). */
  redact?: Record<string, string>;
  connections: number;
  /** Streams in flight per connection: connections × streams is the concurrency. */
  streams: number;
  /** Main duration; requests still in flight when it ends are not counted. */
  seconds: number;
  /**
   * h2load's own warm-up (not measured, not logged). Callers that count server-side effects
   * warm up with a separate run instead, so the counts cover exactly the measured requests.
   * @defaultValue 0
   */
  warmupSeconds?: number;
  /** Offered rate per connection (open loop), instead of as fast as responses come. */
  rpsPerConnection?: number;
}

export interface H2loadResult {
  /** The h2load command line (body file and secrets named, not inlined). */
  command: string;
  /** 2xx responses per second of main duration. */
  rps: number;
  status2xx: number;
  /** Requests h2load counted as failed, errored or timed out, plus non-2xx responses. */
  failed: number;
  /** Started but unanswered when the duration ended (neither success nor error). */
  unfinished: number;
  /** Most requests in flight at once: when it reaches connections × streams, h2load was waiting on the server. */
  maxInFlight: number;
  latency: LatencySummary;
  /** Per-request latency of 2xx responses, ms. */
  samplesMs: number[];
  /** 2xx responses completed per second of the run. */
  perSecond: Array<[number, number]>;
  /** Every 2xx response: when it started (ms since the epoch) and how long it took (ms). */
  answered: Array<{ startMs: number; ms: number }>;
}

/** Runs h2load once and reads its per-request log (so quantiles are ours, not its mean ± sd). */
export async function h2load(opts: H2loadOptions): Promise<H2loadResult> {
  const dir = await mkdtemp(join(tmpdir(), "herald-h2load-"));
  try {
    const bodyFile = join(dir, "body.bin");
    const logFile = join(dir, "requests.tsv");
    await writeFile(bodyFile, opts.body);
    const headers = Object.entries(opts.headers ?? {});
    const flags = [
      `-c${opts.connections}`,
      `-m${opts.streams}`,
      `-D${opts.seconds}`,
      ...(opts.warmupSeconds ? [`--warm-up-time=${opts.warmupSeconds}`] : []),
      ...(opts.rpsPerConnection ? [`--rps=${opts.rpsPerConnection}`] : []),
    ];
    const args = [...flags, "-d", bodyFile, ...headers.flatMap(([k, v]) => ["-H", `${k}: ${v}`]), `--log-file=${logFile}`, opts.url];
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(H2LOAD, args, { maxBuffer: 16 << 20 }, (err, out, errOut) =>
        err ? reject(new Error(`h2load failed: ${err.message}\n${errOut}`)) : resolve(out),
      );
    });
    const shown = headers.map(([k, v]) => `-H '${k}: ${opts.redact?.[k] ?? v}'`);
    const command = `h2load ${flags.join(" ")} -d <${opts.body.length}-byte body> ${shown.join(" ")} ${opts.url}`;
    return parse(stdout, await readFile(logFile, "utf8"), opts.seconds, command);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function count(text: string, re: RegExp): number {
  const m = re.exec(text);
  if (!m) throw new Error(`h2load output lacks ${re}:\n${text.slice(-2000)}`);
  return Number(m[1]);
}

function parse(stdout: string, log: string, seconds: number, command: string): H2loadResult {
  const samplesMs: number[] = [];
  const answered: Array<{ startMs: number; ms: number }> = [];
  const ends: number[] = [];
  // +1 at each start, -1 at each end (µs), for the most requests in flight at once.
  const edges: Array<[number, number]> = [];
  let unfinished = 0;
  let first = Infinity;
  for (const line of log.split("\n")) {
    if (!line) continue;
    // start time (µs since epoch), HTTP status (0: no response yet), µs until the response ended
    const [start, status, micros] = line.split("\t").map(Number) as [number, number, number];
    first = Math.min(first, start / 1000);
    edges.push([start, 1]);
    if (status === 0) {
      unfinished++;
      continue;
    }
    edges.push([start + micros, -1]);
    if (status >= 200 && status < 300) {
      samplesMs.push(micros / 1000);
      answered.push({ startMs: start / 1000, ms: micros / 1000 });
      ends.push(start / 1000 + micros / 1000);
    }
  }
  let inFlight = 0;
  let maxInFlight = 0;
  for (const [, d] of edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])) maxInFlight = Math.max(maxInFlight, (inFlight += d));
  const status2xx = count(stdout, /status codes: (\d+) 2xx/);
  const non2xx = ["3xx", "4xx", "5xx"].reduce((s, k) => s + count(stdout, new RegExp(`(\\d+) ${k}`)), 0);
  const errored = count(stdout, /(\d+) errored/) + count(stdout, /(\d+) timeout/);
  return {
    command,
    rps: Math.round(samplesMs.length / seconds),
    status2xx,
    failed: non2xx + errored,
    unfinished,
    maxInFlight,
    latency: summarize(samplesMs),
    samplesMs,
    // Whole seconds of the main duration only: the last bucket would be a partial second.
    perSecond: perSecond(ends, first).filter(([s]) => s < seconds),
    answered,
  };
}

/** Connections and streams per connection for `inFlight` requests: up to 50 streams a connection, at most 4. */
export function spread(inFlight: number): { connections: number; streams: number } {
  const connections = Math.min(4, Math.max(1, Math.ceil(inFlight / 50)));
  return { connections, streams: Math.ceil(inFlight / connections) };
}
