import * as grpc from "@grpc/grpc-js";

// Load from real grpc-js clients that give every call a deadline, as internal services do, and
// record each call's outcome: what h2load cannot see (grpc-status) and what overload is about
// (a call answered after its client gave up is no use to anyone). A client whose deadline
// passes cancels the call itself (RST_STREAM), exactly as it would in production.

/** One call: ms since the load's t0 of its scheduled start, its actual start and its end; its gRPC status. */
export interface CallRecord {
  due: number;
  sent: number;
  end: number;
  code: grpc.status;
}

export interface DeadlineCaller {
  /** One call with the caller's deadline; resolves to its status, never rejects. */
  call: () => Promise<grpc.status>;
  close: () => void;
  /** The distinct messages of INTERNAL answers so far (a few): where they came from. */
  internalDetails: Set<string>;
}

/**
 * Unary calls of `path` with a fixed body over `connections` separate HTTP/2 connections, used
 * round robin (grpc-js would otherwise share one subchannel between clients of one target).
 */
export function deadlineCaller(opts: {
  address: string;
  path: string;
  body: Uint8Array;
  metadata: Record<string, string>;
  connections: number;
  deadlineMs: number;
}): DeadlineCaller {
  const clients = Array.from(
    { length: opts.connections },
    () => new grpc.Client(opts.address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata)) md.set(k, v);
  const body = Buffer.from(opts.body);
  const id = (b: Buffer) => b;
  let next = 0;
  const internalDetails = new Set<string>();
  return {
    internalDetails,
    call: () =>
      new Promise((resolve) => {
        const client = clients[next++ % clients.length]!;
        client.makeUnaryRequest(opts.path, id, id, body, md, { deadline: Date.now() + opts.deadlineMs }, (err) => {
          if (err?.code === grpc.status.INTERNAL && internalDetails.size < 5) internalDetails.add(err.details);
          resolve(err ? err.code : grpc.status.OK);
        },
        );
      }),
    close: () => clients.forEach((c) => c.close()),
  };
}

/** One stretch of an open-loop schedule: `rate` calls a second for `seconds`. */
export interface Phase {
  rate: number;
  seconds: number;
}

/**
 * Open loop over consecutive phases: call i of a phase starts at its due time whatever earlier
 * calls are doing (no coordinated omission). Returns every call's record, t0 = first due time.
 */
export async function openLoop(phases: readonly Phase[], call: () => Promise<grpc.status>): Promise<CallRecord[]> {
  const records: CallRecord[] = [];
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  let phaseStart = 0;
  for (const { rate, seconds } of phases) {
    const total = Math.round(rate * seconds);
    for (let i = 0; i < total; i++) {
      const due = phaseStart + (i * 1000) / rate;
      const wait = due - (performance.now() - t0);
      // Sleep only when ahead by more than a timer's granularity; otherwise start in a burst.
      if (wait > 2) await new Promise((r) => setTimeout(r, wait));
      const sent = performance.now() - t0;
      pending.push(call().then((code) => void records.push({ due, sent, end: performance.now() - t0, code })));
    }
    phaseStart += seconds * 1000;
  }
  await Promise.all(pending);
  return records;
}

/** Closed loop: `inFlight` callers, each starting its next call when the last one answers, for `seconds`. */
export async function closedLoop(inFlight: number, seconds: number, call: () => Promise<grpc.status>): Promise<CallRecord[]> {
  const records: CallRecord[] = [];
  const t0 = performance.now();
  const stop = seconds * 1000;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let sent = 0; (sent = performance.now() - t0) < stop; ) {
        const code = await call();
        records.push({ due: sent, sent, end: performance.now() - t0, code });
      }
    }),
  );
  return records;
}

/**
 * Whether a call is goodput: answered OK within its deadline. grpc-js enforces the deadline (an
 * answer after it is DEADLINE_EXCEEDED), but this process may run the OK callback late when its
 * own event loop is busy: up to this much of that delay is the generator's, not the server's.
 */
const GENERATOR_SLACK_MS = 250;

export const isGood = (r: CallRecord, deadlineMs: number) => r.code === grpc.status.OK && r.end - r.sent <= deadlineMs + GENERATOR_SLACK_MS;

/** Calls by status name, e.g. { OK: 900, RESOURCE_EXHAUSTED: 100 }. */
export function byCode(records: readonly CallRecord[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of records) {
    const name = grpc.status[r.code] ?? String(r.code);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
