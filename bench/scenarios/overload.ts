import { createRequestBytes } from "../lib/bodies.js";
import { GRPC_HEADERS, grpcFrame, h2load } from "../lib/h2load.js";
import { byCode, closedLoop, deadlineCaller, isGood, openLoop, type CallRecord } from "../lib/deadline-load.js";
import { goodputRate, goodputSeries, normalBound, p99, recoverySeconds } from "../lib/overload-analysis.js";
import type { Figure, Scenario, TargetCheck, TimeSeries } from "../lib/result.js";
import { startStack, unpublished, type Stack } from "../lib/stack.js";
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

    // The same 2× with a load generator that costs little: h2load (C) against the server, so
    // on 2 cores the figure is Herald's and not the grpc-js generator's CPU. h2load cannot read
    // grpc-status, so goodput counts what PostgreSQL committed (a call whose deadline passed
    // in the queue is dropped before its insert; the window after it is tens of ms).
    const cheap = await cheapClientOverload(stack, ctx.quick ? 4 : 8, ctx.quick ? 6 : 20, (line) => ctx.progress.step(line));
    figures.push(...cheap.figures);
    targets.push({
      name: "goodput at 2× the sustainable rate, C load generator",
      target: `≥ ${GOODPUT_TARGET * 100}% of the maximum goodput`,
      actual: `${(100 * cheap.ratio).toFixed(1)}% of ${fmt(cheap.max)} commits/s (${fmt(cheap.over)} commits/s at ${fmt(cheap.offered)} req/s offered)`,
      met: cheap.ratio >= GOODPUT_TARGET,
    });
    targets.push({
      name: "recovery after the overload ends, C load generator",
      target: `normal again within ${RECOVERY_TARGET_S} s`,
      actual: cheap.recovery === undefined ? "not back to normal within the run" : `${cheap.recovery.toFixed(2)} s`,
      met: cheap.recovery !== undefined && cheap.recovery <= RECOVERY_TARGET_S,
    });
    notes.push(cheap.note);

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
    const left = await unpublished(stack);
    if (left === 0) return;
    if (performance.now() > deadline) throw new Error(`${left} outbox rows still unpublished after 300 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Max, 2× goodput and recovery measured with h2load; success counted in commits. */
async function cheapClientOverload(stack: Stack, closedSeconds: number, overSeconds: number, step: (line: string) => void) {
  const url = `http://${stack.grpcAddress}${CREATE_PATH}`;
  const body = grpcFrame(createRequestBytes());
  const headers = { ...GRPC_HEADERS, authorization: `Bearer ${stack.apiKey}`, "grpc-timeout": `${DEADLINE_MS}m` };
  const redact = { authorization: "Bearer $HERALD_API_KEY" };
  const rows = async () => Number((await stack.pool.query<{ n: string }>("SELECT count(*) AS n FROM notifications")).rows[0]!.n);
  const openLoopAt = (rate: number, seconds: number) =>
    h2load({ url, body, headers, redact, connections: 4, streams: 250, seconds, rpsPerConnection: Math.max(1, Math.ceil(rate / 4)) });

  step(`h2load closed loop, 200 in flight: ${closedSeconds}s`);
  let before = await rows();
  const closed = await h2load({ url, body, headers, redact, connections: 4, streams: 50, seconds: closedSeconds });
  const max = ((await rows()) - before) / closedSeconds;
  await drained(stack);

  const low = Math.round(max / 2);
  const offered = Math.round(2 * max);
  const afterSeconds = Math.max(8, Math.round(overSeconds * 0.75));
  step(`h2load ${fmt(low)} → ${fmt(offered)} → ${fmt(low)} req/s offered: ${8 + overSeconds + afterSeconds}s`);
  const baseline = await openLoopAt(low, 8);
  before = await rows();
  const over = await openLoopAt(offered, overSeconds);
  const committed = ((await rows()) - before) / overSeconds;
  const afterStart = Date.now();
  const after = await openLoopAt(low, afterSeconds);
  // Commits since the overload ended, by the time each was accepted: a refusal commits nothing,
  // so a second that committed the offered rate answered it.
  const commitTimes = (await stack.pool.query<{ t: number }>("SELECT (extract(epoch FROM created_at) * 1000)::float8 AS t FROM notifications WHERE created_at >= to_timestamp($1 / 1000.0)", [afterStart])).rows.map((r) => r.t);
  await drained(stack);

  // Normal: p99 of answers within the bound set by the baseline, and the offered rate committed.
  const p99Of = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.99);
  const baselineP99 = p99Of(baseline.answered.filter((a) => a.startMs >= baseline.answered[0]!.startMs + 2000).map((a) => a.ms));
  const bound = normalBound(baselineP99);
  const recovery = recoveredAfter(after.answered, commitTimes, afterStart, afterSeconds, low, bound);

  const asFigure = (name: string, r: typeof closed, commits: number, extra: Record<string, number | string>): Figure => ({
    name,
    throughput: { value: Math.round(commits), unit: "commits/s" },
    latency: r.latency,
    errors: r.failed,
    extra: { "answers/s (any grpc-status)": r.rps, "most in flight": r.maxInFlight, ...extra },
  });
  return {
    max,
    over: committed,
    offered,
    ratio: committed / max,
    recovery,
    figures: [
      asFigure("h2load closed loop, 200 in flight", closed, max, {}),
      asFigure(`h2load 2× (${fmt(offered)} req/s offered)`, over, committed, { "goodput ÷ max": `${(100 * (committed / max)).toFixed(1)}%` }),
      asFigure(`h2load 0.5× after (${fmt(low)} req/s offered)`, after, commitTimes.length / afterSeconds, {
        "normal = p99 ≤": `${bound.toFixed(1)} ms and ≥ 90% of the offered rate committed`,
        "back to normal after": recovery === undefined ? `not within ${afterSeconds} s` : `${recovery.toFixed(2)} s`,
      }),
    ],
    note: `C load generator: ${over.command}. Goodput = notifications committed per second (h2load sees every answer as HTTP 200, refusals included, so its latency figures mix OK answers with fast refusals). At most 1,000 calls in flight (4 connections × 250 streams): past that h2load waits, as a real client's HTTP/2 stream limit would make it. Recovery: the start of the first 1 s window after the overload from which, for 3 s, every window's answers have p99 within the bound and PostgreSQL committed at least 90% of the offered rate.`,
  };
}

/** Seconds from `startMs` until every 1 s window (stepping 250 ms) for 3 s is normal; undefined if never. */
function recoveredAfter(answered: Array<{ startMs: number; ms: number }>, commits: number[], startMs: number, seconds: number, rate: number, boundMs: number): number | undefined {
  const normalAt = (at: number) => {
    const inWindow = answered.filter((a) => a.startMs >= at && a.startMs < at + 1000).map((a) => a.ms).sort((x, y) => x - y);
    const committed = commits.filter((t) => t >= at && t < at + 1000).length;
    return inWindow.length > 0 && quantile(inWindow, 0.99) <= boundMs && committed >= 0.9 * rate;
  };
  const windows: boolean[] = [];
  for (let at = startMs; at + 1000 <= startMs + seconds * 1000; at += 250) windows.push(normalAt(at));
  for (let i = 0; i + 12 < windows.length; i++) if (windows.slice(i, i + 13).every(Boolean)) return (i * 250) / 1000;
  return undefined;
}
