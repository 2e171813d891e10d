import { createRequestBytes } from "../lib/bodies.js";
import { byCode, closedLoop, deadlineCaller, isGood, openLoop, type CallRecord } from "../lib/deadline-load.js";
import { goodputRate, goodputSeries, normalBound, p99, recoverySeconds } from "../lib/overload-analysis.js";
import type { Figure, Scenario, TargetCheck, TimeSeries } from "../lib/result.js";
import { startStack, type Stack } from "../lib/stack.js";
import { quantile, summarize } from "../lib/stats.js";

// Overload: does Herald keep serving at twice what it can sustain, and come back at once when
// the overload ends (issue 12)? Every call is a real grpc-js Create with a 1 s deadline, so a
// call the server answers late is a call its client already cancelled.
//
// 1. The sustainable rate: goodput (OK within the deadline, per second) of a closed loop at a
//    few concurrencies; the best is "max".
// 2. Open loop, one schedule: 0.5× max (the baseline p99), 2× max (goodput during it, as a share
//    of max), then 0.5× max again (recovery: how long until latency is back to normal).
// The timeline runs twice: the machine is shared, so one run is an anecdote.

const CREATE_PATH = "/herald.v1.NotificationService/Create";
const DEADLINE_MS = 1000;
const CONNECTIONS = 4;
const GOODPUT_TARGET = 0.8;
const RECOVERY_TARGET_S = 5;

const fmt = (n: number) => Math.round(n).toLocaleString("en");

export const run: Scenario = async (ctx) => {
  const closedSeconds = ctx.quick ? 3 : 8;
  const levels = ctx.quick ? [64] : [64, 200];
  const phases = ctx.quick ? { before: 4, over: 6, after: 8 } : { before: 10, over: 20, after: 15 };
  const rounds = ctx.quick ? 1 : 2;
  const figures: Figure[] = [];
  const timeseries: TimeSeries[] = [];
  const targets: TargetCheck[] = [];
  const notes: string[] = [];

  ctx.progress.step("starting Herald (server, relay)");
  const stack = await startStack({ name: "overload", roles: ["server", "relay"] });
  const caller = deadlineCaller({
    address: stack.grpcAddress,
    path: CREATE_PATH,
    body: createRequestBytes(),
    metadata: { authorization: `Bearer ${stack.apiKey}` },
    connections: CONNECTIONS,
    deadlineMs: DEADLINE_MS,
  });
  try {
    ctx.progress.step("warm-up");
    await closedLoop(64, ctx.quick ? 1 : 3, caller.call);
    await drained(stack);

    let max = 0;
    for (const inFlight of levels) {
      ctx.progress.step(`closed loop, ${inFlight} in flight: ${closedSeconds}s`);
      const records = await closedLoop(inFlight, closedSeconds, caller.call);
      const goodput = goodputRate(records, DEADLINE_MS, 0, closedSeconds * 1000);
      max = Math.max(max, goodput);
      figures.push(figure(`closed loop, ${inFlight} in flight`, records, closedSeconds * 1000, { "in flight": inFlight }));
      await drained(stack);
    }

    const low = Math.round(max / 2);
    const high = Math.round(max * 2);
    const overStart = phases.before * 1000;
    const overEnd = overStart + phases.over * 1000;
    const end = overEnd + phases.after * 1000;
    const ratios: number[] = [];
    const recoveries: Array<number | undefined> = [];
    const internal: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      ctx.progress.step(`round ${round}: ${fmt(low)} → ${fmt(high)} → ${fmt(low)} req/s offered, ${phases.before + phases.over + phases.after}s`);
      const records = await openLoop(
        [
          { rate: low, seconds: phases.before },
          { rate: high, seconds: phases.over },
          { rate: low, seconds: phases.after },
        ],
        caller.call,
      );
      // The first 2 s warm the connections and the pool up again after the pause before the round.
      const baseline = p99(records, 2000, overStart);
      const bound = normalBound(baseline);
      const goodput = goodputRate(records, DEADLINE_MS, overStart, overEnd);
      // A baseline with failures has no normal to return to.
      const recovery = Number.isFinite(bound) ? recoverySeconds(records, overEnd, end, bound) : undefined;
      const codes = byCode(records);
      ratios.push(goodput / max);
      recoveries.push(recovery);
      internal.push(codes.INTERNAL ?? 0);
      const during = records.filter((r) => r.due >= overStart && r.due < overEnd);
      const offered = (during.length * 1000) / (overEnd - overStart);
      const sentLate = quantile(during.map((r) => r.sent - r.due).sort((a, b) => a - b), 0.99);
      figures.push(
        figure(`round ${round}: 2× (${fmt(high)} req/s offered)`, during, overEnd - overStart, {
          "goodput ÷ max": `${(100 * (goodput / max)).toFixed(1)}%`,
          "generator p99 lateness": `${sentLate.toFixed(0)} ms`,
          "offered req/s": Math.round(offered),
        }),
      );
      figures.push(
        figure(`round ${round}: 0.5× before (${fmt(low)} req/s)`, records.filter((r) => r.due >= 2000 && r.due < overStart), overStart - 2000, {
          "p99 incl. errors": `${baseline.toFixed(1)} ms`,
        }),
      );
      figures.push(
        figure(`round ${round}: 0.5× after`, records.filter((r) => r.due >= overEnd), end - overEnd, {
          "normal = p99 ≤": `${bound.toFixed(1)} ms`,
          "back to normal after": recovery === undefined ? `not within ${phases.after} s` : `${recovery.toFixed(2)} s`,
          "all codes": Object.entries(codes).map(([k, v]) => `${k} ${v}`).join(", "),
        }),
      );
      timeseries.push({ name: `round ${round}: goodput (OK within ${DEADLINE_MS} ms)`, unit: "req/s", points: goodputSeries(records, DEADLINE_MS) });
      await drained(stack);
    }

    const shown = (xs: number[], f: (x: number) => string) => (xs.length === 1 ? f(xs[0]!) : `${f(Math.min(...xs))}–${f(Math.max(...xs))}`);
    const recovered = recoveries.filter((r): r is number => r !== undefined);
    targets.push({
      name: "goodput at 2× the sustainable rate",
      target: `≥ ${GOODPUT_TARGET * 100}% of the maximum goodput`,
      actual: `${shown(ratios, (r) => `${(100 * r).toFixed(1)}%`)} of ${fmt(max)} req/s over ${rounds} round(s)`,
      met: ratios.every((r) => r >= GOODPUT_TARGET),
    });
    targets.push({
      name: "recovery after the overload ends",
      target: `latency normal again within ${RECOVERY_TARGET_S} s`,
      actual:
        recovered.length === recoveries.length
          ? `${shown(recovered, (s) => `${s.toFixed(2)} s`)} over ${rounds} round(s)`
          : `${recoveries.length - recovered.length} of ${rounds} round(s) not back to normal within ${phases.after} s`,
      met: recovered.length === recoveries.length && recovered.every((s) => s <= RECOVERY_TARGET_S),
    });
    targets.push({
      name: "INTERNAL seen by clients",
      target: "0",
      actual: `${internal.reduce((a, b) => a + b, 0)} over ${rounds} round(s)`,
      met: internal.every((n) => n === 0),
    });
    notes.push(
      `Max: the best goodput of a closed loop at ${levels.join(" and ")} calls in flight, ${closedSeconds} s each, ${fmt(max)} req/s. Goodput counts calls answered OK within the ${DEADLINE_MS} ms deadline, per second of the stretch they were due in.`,
      `Recovery: latency counts from each call's scheduled start, and a call not answered OK counts as infinitely slow. Normal = p99 at most max(2 × the 0.5× baseline p99, baseline + 20 ms), in every 1 s window (stepping 250 ms) for 3 s; the figure is how long after the overload ended the first such window starts.`,
      `The load generator is this process: ${CONNECTIONS} grpc-js connections, every call with a ${DEADLINE_MS} ms deadline (grpc-timeout), which grpc-js enforces by cancelling the call (RST_STREAM). It shares the machine's cores with Herald's server and relay, PostgreSQL and Kafka; "generator p99 lateness" shows how far behind schedule it started calls.`,
    );
    if (caller.internalDetails.size > 0) notes.push(`INTERNAL answers said: ${[...caller.internalDetails].map((d) => `"${d}"`).join("; ")}.`);
  } finally {
    caller.close();
    await stack.stop();
  }
  return {
    id: "overload",
    title: "Overload: goodput at 2× and recovery",
    command: `npm run bench -- --only overload${ctx.quick ? " --quick" : ""}`,
    method: `grpc-js Creates with a ${DEADLINE_MS} ms deadline against \`herald server\` and \`herald relay\` processes: closed loop for the sustainable rate, then open loop at 0.5× (${phases.before} s), 2× (${phases.over} s) and 0.5× (${phases.after} s) of it, ${rounds} round(s).`,
    figures,
    timeseries,
    targets,
    notes,
  };
};

function figure(name: string, records: CallRecord[], spanMs: number, extra: Record<string, number | string>): Figure {
  const good = records.filter((r) => isGood(r, DEADLINE_MS));
  const codes = byCode(records);
  return {
    name,
    throughput: { value: Math.round((good.length * 1000) / spanMs), unit: "good req/s" },
    latency: summarize(good.map((r) => r.end - r.due)),
    errors: records.length - good.length,
    extra: { ...extra, ...(extra["all codes"] ? {} : { codes: Object.entries(codes).map(([k, v]) => `${k} ${v}`).join(", ") }) },
  };
}

/** Waits until the relay has published every outbox row, so one stretch's publishing does not load the next. */
async function drained(stack: Stack): Promise<void> {
  const deadline = performance.now() + 300_000;
  for (;;) {
    const r = await stack.pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL");
    if (Number(r.rows[0]!.n) === 0) return;
    if (performance.now() > deadline) throw new Error(`${r.rows[0]!.n} outbox rows still unpublished after 300 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
