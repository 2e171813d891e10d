import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../../src/client/index.js";
import { stopAll, type Exit, type HeraldProcess } from "../support/processes.js";
import { retryUnavailable, waitFor } from "../support/wait.js";
import { startTwilioStandIn, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/stand-ins/webhook-receiver.js";
import {
  maxInSlidingWindow,
  startE2e,
  twilioCredentials,
  twilioEnv,
  waitForGroup,
  webhookEnv,
  webhookSecret,
  type Address,
  type E2e,
} from "./support.js";

// HERALD_RATE_LIMIT_<CHANNEL> is one budget per provider, shared through Redis by every worker
// process: two worker processes (each delivering SMS and webhooks) work off a deep backlog until
// N·10 requests have reached each provider, counted where it matters, at the providers. A
// webhook request also says when the worker built it: the signed payload's timestamp (ms),
// taken synchronously right after the limiter's grant resolved. So the limiter is checked on the
// granting processes' clock as well as on arrival.
//
// Everything asserted is a count per window of recorded timestamps: a property of the limiter,
// which a slow machine cannot push over (it can only send less). How fast the run goes is
// reported, never asserted.

const N = 20;
/** The limiter's stated bound for any 1 s window (src/workers/rate-limit.ts): N + ceil(N/10). */
const TOLERANCE = N + Math.ceil(N / 10);
const RUN_MS = 10_000;
/** The run ends once this many requests reached each provider: N per second for RUN_MS at most. */
const RUN_REQUESTS = N * (RUN_MS / 1000);
const BACKLOG = 300;
/** The burst at the start (takes arrive mid-slot while the workers claim their first records), reported apart. */
const START_MS = 1000;

const creds = twilioCredentials();
const secret = webhookSecret();
let e2e: E2e;
let twilio: TwilioStandIn;
let hooks: WebhookReceiver;

/** What a run produced: request times (ms) and what each process says it sent. */
interface Run {
  start: number;
  smsArrivals: number[];
  hookArrivals: number[];
  hookBuilt: number[];
  exits: Exit[];
  sent: { sms: number[]; webhook: number[] };
}
let run: Run;

/** What a worker process reports about one channel's deliveries when it stops. */
function sentBy(worker: HeraldProcess, channel: string): number {
  const line = worker.logs().find((l) => l.msg === "worker stopped" && l.channel === channel);
  const sent = (line?.counters as { sent?: number } | undefined)?.sent;
  if (sent === undefined) throw new Error(`${worker.name} logged no ${channel} counters on stopping`);
  return sent;
}

/** The most requests in one wall-clock second (such windows start on a limiter slot boundary). */
function densestAlignedSecond(times: readonly number[]): number {
  const perSecond = new Map<number, number>();
  for (const t of times) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
  return Math.max(0, ...perSecond.values());
}

const densest = (times: readonly number[]) => maxInSlidingWindow(times, 1000).count;
/** Only what came once the starting burst was over. */
const steady = (times: readonly number[]) => times.filter((t) => t >= run.start + START_MS);

beforeAll(async () => {
  [twilio, hooks] = await Promise.all([startTwilioStandIn(creds), startWebhookReceiver({ secret })]);
  e2e = await startE2e(
    {
      ...twilioEnv(twilio, creds),
      ...webhookEnv(secret),
      HERALD_RATE_LIMIT_SMS: String(N),
      HERALD_RATE_LIMIT_WEBHOOK: String(N),
      HERALD_WORKER_CONCURRENCY: "16",
    },
    // This process only answers as the providers: its clock stamps arrivals, so it must not stall.
    { separateRoles: true },
  );
  const workers = await Promise.all(["worker-a", "worker-b"].map((name) => e2e.startWorker("sms,webhook", { name })));
  // Both members hold partitions before the backlog lands, so no rebalance interrupts the run.
  await Promise.all(["sms", "webhook"].map((c) => waitForGroup(`${e2e.prefix}herald-worker-${c}`, 2)));

  // Scheduled a day ahead and made due only once all of it exists, so creating the backlog (in
  // this process, which stamps arrivals) is over before the first send, however long it took;
  // the scheduler then releases it all at once.
  const due = new Date(Date.now() + 86_400_000);
  // As a well-behaved client does: UNAVAILABLE (a busy machine can make a connection wait out its
  // timeout) is tried again under the same idempotency key, so each one is stored once.
  const schedule = (userId: string, address: Address, text: string) =>
    retryUnavailable(() =>
      e2e.client.schedule({
        notification: {
          channel: address.case === "phone" ? Channel.SMS : Channel.WEBHOOK,
          recipient: { userId, address },
          body: { case: "content", value: { text } },
        },
        idempotencyKey: `${address.case}:${text.replace(/[^!-~]/g, "-")}`,
        when: { case: "deliverAt", value: timestampFromDate(due) },
      }),
    );
  const backlog = await Promise.all(
    Array.from({ length: BACKLOG }, (_, i) => [
      schedule(`rl-${i % 60}`, { case: "phone", value: "+14155550100" }, `limited #${i}`),
      schedule(`rl-${i % 60}`, { case: "webhookUrl", value: hooks.hookUrl }, `limited #${i}`),
    ]).flat(),
  );
  await e2e.pool.query("UPDATE notifications SET deliver_at = now() WHERE id = ANY($1::uuid[])", [backlog.map((r) => r.notification!.id)]);

  const [first] = await twilio.waitForRequests(1, 60_000);
  const start = first!.receivedAt.getTime();
  await waitFor(
    `${RUN_REQUESTS} requests at each provider`,
    () => twilio.requests.length >= RUN_REQUESTS && hooks.requests.length >= RUN_REQUESTS,
    { timeoutMs: 180_000, everyMs: 100 },
  );
  // SIGTERM: the workers drain (sends in flight finish, still under the limit) and log their counters.
  const exits = await Promise.all(workers.map((w) => w.stop("SIGTERM", 20_000)));
  run = {
    start,
    smsArrivals: twilio.requests.map((r) => r.receivedAt.getTime()),
    hookArrivals: hooks.requests.map((r) => r.receivedAt.getTime()),
    hookBuilt: hooks.deliveries.map((d) => Date.parse((d.payload as { timestamp: string }).timestamp)),
    exits,
    sent: { sms: workers.map((w) => sentBy(w, "sms")), webhook: workers.map((w) => sentBy(w, "webhook")) },
  };
  const inRun = run.smsArrivals.filter((t) => t < start + RUN_MS).length;
  console.log(
    `rate limit N=${N}, tolerance ${TOLERANCE}: sms ${inRun} requests in the first ${RUN_MS / 1000} s (${(inRun / (RUN_MS / 1000)).toFixed(1)}/s), ` +
      `${run.smsArrivals.length} in all, sent by worker-a/worker-b ${run.sent.sms.join("/")}; webhook ${run.hookBuilt.length} in all, sent ${run.sent.webhook.join("/")}.\n` +
      `  densest 1 s window from the first request: sms on arrival ${densest(run.smsArrivals)}, webhook when built ${densest(run.hookBuilt)}, on arrival ${densest(run.hookArrivals)}; ` +
      `densest wall-clock second: sms ${densestAlignedSecond(run.smsArrivals)}, webhook built ${densestAlignedSecond(run.hookBuilt)}.\n` +
      `  after the first ${START_MS} ms: sms on arrival ${densest(steady(run.smsArrivals))}, webhook when built ${densest(steady(run.hookBuilt))}, on arrival ${densest(steady(run.hookArrivals))}; ` +
      `wall-clock second: sms ${densestAlignedSecond(steady(run.smsArrivals))}, webhook built ${densestAlignedSecond(steady(run.hookBuilt))}`,
  );
}, 300_000);

afterAll(async () => {
  await e2e?.stop();
  await stopAll("SIGKILL", 5_000);
  await Promise.all([twilio?.close(), hooks?.close()]);
});

describe("the shared provider rate limit across two worker processes", () => {
  it(`N = ${N} per channel: one budget for both processes, at most 1.1·N per second over the first ${RUN_MS / 1000} s`, () => {
    expect(run.exits.map((x) => x.code)).toEqual([0, 0]);
    expect(hooks.rejected).toEqual([]);
    for (const [channel, times] of [["sms", run.smsArrivals], ["webhook", run.hookArrivals]] as const) {
      // Shared: two processes each spending their own N would send about 2·N a second.
      const inRun = times.filter((t) => t < run.start + RUN_MS).length;
      expect(inRun, channel).toBeLessThanOrEqual(1.1 * N * (RUN_MS / 1000));
      expect(densest(times), channel).toBeLessThan(1.5 * N);
    }
    // The run ended with work left: the limit, not the backlog, set the pace throughout.
    expect(run.smsArrivals.length).toBeLessThan(BACKLOG);
    expect(run.hookBuilt.length).toBeLessThan(BACKLOG);
    // Both processes drew on each budget, and every request made is one whose outcome was stored.
    for (const counts of [run.sent.sms, run.sent.webhook]) expect(Math.min(...counts)).toBeGreaterThan(0);
    expect(run.sent.sms[0]! + run.sent.sms[1]!).toBe(run.smsArrivals.length);
    expect(run.sent.webhook[0]! + run.sent.webhook[1]!).toBe(run.hookBuilt.length);
  });

  // The limiter grants at most N + ceil(N/10) in any 1 s window by its own clock (a grant whose
  // Redis round trip crosses a slot boundary lapses). Between the grant and the provider's
  // clock lie the worker's own work and the network, which can move a send across a slot
  // boundary again; the stated tolerance is N + 3·ceil(N/10) (+30 %; measured 22-24 with N = 20
  // on this 2-core machine). It is asserted on the workers' clock (when each webhook was built):
  // arrival times are stamped by this test process, which a busy machine can stall so that a
  // second's arrivals are read together (a CI run under load counted 27 for 26), so arrivals
  // are held only to the first test's 1.5·N and reported here.
  it(`N = ${N}: at most N + 3·ceil(N/10) in any sliding second by the workers' clock`, () => {
    const slack = Math.ceil(N / 10);
    console.log(`densest sliding second: sms arrivals ${densest(run.smsArrivals)}, webhook arrivals ${densest(run.hookArrivals)}, webhook built ${densest(run.hookBuilt)}`);
    expect(densest(run.hookBuilt)).toBeLessThanOrEqual(N + 3 * slack);
  });

});
