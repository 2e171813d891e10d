import { setMaxListeners } from "node:events";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { offeredLoad } from "../lib/offered-load.js";
import type { Figure, LatencySeries, Scenario, TargetCheck } from "../lib/result.js";
import { rssMiB, startStack, type Stack } from "../lib/stack.js";
import { downsample, summarize } from "../lib/stats.js";

// Scenario 5, status fan-out: N WatchStatus subscribers on one API instance, each watching
// one recipient, while notifications to those recipients are created at a fixed rate. Event
// latency runs from a status write (StatusEvent.time: the writer's clock when it wrote the
// transition, same machine) to the subscriber's receipt; the API server's memory is its
// VmRSS. Every role is its own process; the subscribers live in the benchmark process.

const STREAMS_PER_CONNECTION = 250;

export const run: Scenario = async (ctx) => {
  const levels = ctx.quick ? [1000] : [1000, 10_000];
  const rate = ctx.quick ? 50 : 100;
  const seconds = ctx.quick ? 3 : 10;
  const figures: Figure[] = [];
  const latencies: LatencySeries[] = [];
  const targets: TargetCheck[] = [];
  for (const subscribers of levels) {
    const stack = await startStack({
      name: `fan${subscribers}${ctx.runId}`,
      roles: ["server", "relay", "scheduler", "worker:sms"],
      env: { HERALD_WATCH_MAX_STREAMS_PER_KEY: String(subscribers + 10), HERALD_WATCH_MAX_STREAMS: String(subscribers + 10) },
    });
    try {
      const r = await measure(stack, subscribers, rate, seconds, (t) => ctx.progress.step(`${subscribers.toLocaleString("en")} subscribers: ${t}`));
      const summary = summarize(r.latenciesMs);
      figures.push({
        name: `${subscribers.toLocaleString("en")} subscribers, ${rate} notifications/s`,
        latency: summary,
        extra: {
          "events expected": r.expected,
          "events received": r.received,
          "server RSS idle (MiB)": r.rss.idle,
          "with subscribers (MiB)": r.rss.subscribed,
          "peak (MiB)": r.rss.peak,
          "open streams (s)": r.openSeconds,
        },
      });
      latencies.push({ name: `${subscribers.toLocaleString("en")} subscribers`, samplesMs: downsample(r.latenciesMs, 2000) });
      if (subscribers === 10_000 || (ctx.quick && subscribers === levels.at(-1))) {
        targets.push({
          name: `Status event p99 to ${subscribers.toLocaleString("en")} subscribers on one instance`,
          target: "≤ 100 ms",
          actual: `${summary.p99} ms`,
          met: summary.p99 <= 100 && r.received === r.expected,
        });
      }
    } finally {
      await stack.stop();
    }
  }
  return {
    id: "fanout",
    title: "Status fan-out: WatchStatus subscribers on one instance",
    command: `npm run bench -- --only fanout${ctx.quick ? " --quick" : ""}`,
    method: `subscribers over grpc-js (${STREAMS_PER_CONNECTION} streams per connection), each watching one recipient; Creates at a fixed rate (open loop) spread over the recipients; each event (QUEUED, SENDING, SENT) reaches exactly one subscriber`,
    figures,
    latencies,
    targets,
    notes: [
      "Latency includes the writer's commit, the relay (woken by NOTIFY, assigning feed positions), Kafka (acks=all), the API instance's herald.status consumer and the stream write; the subscribers and the load generator share the machine with every role.",
    ],
  };
};

interface FanoutResult {
  expected: number;
  received: number;
  latenciesMs: number[];
  rss: { idle: number; subscribed: number; peak: number };
  openSeconds: number;
}

async function measure(stack: Stack, subscribers: number, rate: number, seconds: number, step: (t: string) => void): Promise<FanoutResult> {
  const pid = stack.pid("server")!;
  const connections = Math.ceil(subscribers / STREAMS_PER_CONNECTION);
  const clients: HeraldClient[] = Array.from({ length: connections }, () => createHeraldClient({ address: stack.grpcAddress, apiKey: stack.apiKey }));
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one signal ends every stream
  try {
    const idle = await rssMiB(pid);
    const latenciesMs: number[] = [];
    let opened = 0;
    const t0 = performance.now();
    const streams = Array.from({ length: subscribers }, async (_, i) => {
      let caughtUp = false;
      const req = { selector: { case: "userId" as const, value: `fan-${i}` } };
      for await (const m of clients[i % connections]!.watchStatus(req, { signal: abort.signal })) {
        if (m.kind.case === "heartbeat") {
          if (!caughtUp) opened++;
          caughtUp = true;
        } else if (m.kind.case === "event" && m.kind.value.time) {
          latenciesMs.push(Date.now() - timestampDate(m.kind.value.time).getTime());
        }
      }
    });
    const ended = Promise.allSettled(streams);
    while (opened < subscribers) {
      step(`${opened} streams open`);
      await new Promise((r) => setTimeout(r, 250));
      if (performance.now() - t0 > 300_000) throw new Error(`only ${opened} of ${subscribers} streams opened in 5 minutes`);
    }
    const openSeconds = Math.round((performance.now() - t0) / 100) / 10;
    const subscribed = await rssMiB(pid);
    let peak = subscribed;
    const sampler = setInterval(() => void rssMiB(pid).then((v) => (peak = Math.max(peak, v)), () => {}), 250);
    step(`${rate}/s for ${seconds}s`);
    const load = await offeredLoad({
      rate,
      seconds,
      call: (i) =>
        clients[i % connections]!.create({
          notification: {
            channel: Channel.SMS,
            recipient: { userId: `fan-${(i * 7919) % subscribers}`, address: { case: "phone", value: "+14155550100" } },
            body: { case: "content", value: { text: "fan-out" } },
          },
        }),
    });
    const expected = load.ok * 3;
    const deadline = Date.now() + 120_000;
    while (latenciesMs.length < expected && Date.now() < deadline) {
      step(`${latenciesMs.length} of ${expected} events received`);
      await new Promise((r) => setTimeout(r, 250));
    }
    clearInterval(sampler);
    abort.abort();
    await ended;
    return {
      expected,
      received: latenciesMs.length,
      latenciesMs,
      rss: { idle: Math.round(idle), subscribed: Math.round(subscribed), peak: Math.round(peak) },
      openSeconds,
    };
  } finally {
    abort.abort();
    for (const c of clients) c.close();
  }
}
