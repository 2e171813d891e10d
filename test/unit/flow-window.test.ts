import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel, Status, StatusEventSchema, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import { createFlowWindow, LATENCY_WINDOW_MS, RATE_WINDOW_MS } from "../../src/feed/flow-window.js";

// The operations view's flow figures with a clock the test moves: no sleeping, exact values.

const T0 = Date.UTC(2030, 0, 2, 3, 4, 0);

function fakeClock(start = T0) {
  let now = start;
  return { now: () => now, set: (ms: number) => void (now = ms), advance: (ms: number) => void (now += ms) };
}

function event(id: string, status: Status, atMs: number, channel = Channel.EMAIL): StatusEvent {
  return create(StatusEventSchema, { notificationId: id, status, channel, time: timestampFromMs(atMs) });
}

describe("flow window", () => {
  it("measures SENT minus the first QUEUED, per channel, from the events' own times", () => {
    const clock = fakeClock();
    const flow = createFlowWindow({ clock });
    flow.observe(event("a", Status.QUEUED, T0));
    flow.observe(event("b", Status.QUEUED, T0, Channel.SMS));
    flow.observe(event("a", Status.SENDING, T0 + 10));
    // Arrival time (the clock) plays no part in the measure: only the events' times do.
    clock.advance(5000);
    flow.observe(event("a", Status.SENT, T0 + 120));
    flow.observe(event("b", Status.SENT, T0 + 40, Channel.SMS));
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 120, e2eP99Ms: 120, e2eSamples: 1 });
    expect(flow.channel(Channel.SMS)).toMatchObject({ e2eP50Ms: 40, e2eP99Ms: 40, e2eSamples: 1 });
    expect(flow.channel(Channel.PUSH)).toEqual({ sentPerSecond: 0, failedPerSecond: 0, e2eP50Ms: 0, e2eP99Ms: 0, e2eSamples: 0 });
    expect(flow.stats()).toEqual({ inFlight: 0, dropped: 0, unmatched: 0 });
  });

  it("counts retries from the first QUEUED, and a redrive (after DEAD_LETTERED) from its new QUEUED", () => {
    const flow = createFlowWindow({ clock: fakeClock() });
    flow.observe(event("r", Status.QUEUED, T0));
    flow.observe(event("r", Status.RETRYING, T0 + 100));
    flow.observe(event("r", Status.QUEUED, T0 + 1000)); // released for attempt 2
    flow.observe(event("r", Status.SENT, T0 + 1500));
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 1500, e2eSamples: 1 });

    flow.observe(event("d", Status.QUEUED, T0));
    flow.observe(event("d", Status.DEAD_LETTERED, T0 + 100));
    flow.observe(event("d", Status.QUEUED, T0 + 60_000)); // redriven
    flow.observe(event("d", Status.SENT, T0 + 60_250));
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 250, e2eP99Ms: 1500, e2eSamples: 2 });
  });

  it("gives no sample for a SENT whose QUEUED it never saw, and forgets canceled and failed notifications", () => {
    const flow = createFlowWindow({ clock: fakeClock() });
    flow.observe(event("early", Status.SENT, T0));
    flow.observe(event("c", Status.QUEUED, T0));
    flow.observe(event("c", Status.CANCELED, T0 + 1));
    flow.observe(event("f", Status.QUEUED, T0));
    flow.observe(event("f", Status.FAILED, T0 + 1));
    flow.observe(event("open", Status.QUEUED, T0));
    expect(flow.stats()).toEqual({ inFlight: 1, dropped: 0, unmatched: 1 });
    expect(flow.channel(Channel.EMAIL).e2eSamples).toBe(0);
  });

  it("rates: SENT and FAILED+DEAD_LETTERED per second over the last minute, by arrival", () => {
    const clock = fakeClock();
    const flow = createFlowWindow({ clock });
    for (let i = 0; i < 30; i++) flow.observe(event(`s${i}`, Status.SENT, T0));
    for (let i = 0; i < 4; i++) flow.observe(event(`f${i}`, Status.FAILED, T0));
    for (let i = 0; i < 2; i++) flow.observe(event(`d${i}`, Status.DEAD_LETTERED, T0));
    flow.observe(event("x", Status.SENT, T0, Channel.WEBHOOK));
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ sentPerSecond: 30 / 60, failedPerSecond: 6 / 60 });
    expect(flow.channel(Channel.WEBHOOK)).toMatchObject({ sentPerSecond: 1 / 60, failedPerSecond: 0 });

    clock.advance(30_000);
    for (let i = 0; i < 15; i++) flow.observe(event(`t${i}`, Status.SENT, T0));
    expect(flow.channel(Channel.EMAIL).sentPerSecond).toBe(45 / 60);
    // The first 30 leave the window a minute after they came; the 15 stay.
    clock.set(T0 + RATE_WINDOW_MS);
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ sentPerSecond: 15 / 60, failedPerSecond: 0 });
    clock.advance(30_000);
    expect(flow.channel(Channel.EMAIL).sentPerSecond).toBe(0);
    // A bucket is reused a minute later for the new second, not added to.
    flow.observe(event("later", Status.SENT, T0));
    expect(flow.channel(Channel.EMAIL).sentPerSecond).toBe(1 / 60);
  });

  it("percentiles are nearest-rank over the samples of the last five minutes", () => {
    const clock = fakeClock();
    const flow = createFlowWindow({ clock });
    // 1..100 ms, arriving in a shuffled order.
    const order = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const ms of order) {
      flow.observe(event(`n${ms}`, Status.QUEUED, T0));
      flow.observe(event(`n${ms}`, Status.SENT, T0 + ms));
    }
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 50, e2eP99Ms: 99, e2eSamples: 100 });

    clock.advance(LATENCY_WINDOW_MS - 1);
    flow.observe(event("slow", Status.QUEUED, T0));
    flow.observe(event("slow", Status.SENT, T0 + 5000));
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 51, e2eP99Ms: 100, e2eSamples: 101 });
    // The first hundred leave the window; the slow one alone remains.
    clock.advance(2);
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 5000, e2eP99Ms: 5000, e2eSamples: 1 });
  });

  it("keeps at most maxInFlight notifications (the oldest forgotten, counted) and the newest maxSamples samples", () => {
    const flow = createFlowWindow({ clock: fakeClock(), maxInFlight: 3, maxSamples: 4 });
    for (const id of ["a", "b", "c", "d", "e"]) flow.observe(event(id, Status.QUEUED, T0));
    expect(flow.stats()).toEqual({ inFlight: 3, dropped: 2, unmatched: 0 });
    // A retry's QUEUED neither moves nor re-adds a remembered one.
    flow.observe(event("c", Status.QUEUED, T0 + 1));
    expect(flow.stats()).toEqual({ inFlight: 3, dropped: 2, unmatched: 0 });
    flow.observe(event("a", Status.SENT, T0 + 10)); // forgotten: no sample
    for (const [id, ms] of [["c", 30], ["d", 40], ["e", 50]] as const) flow.observe(event(id, Status.SENT, T0 + ms));
    expect(flow.stats()).toEqual({ inFlight: 0, dropped: 2, unmatched: 1 });
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 40, e2eSamples: 3 });

    for (const [id, ms] of [["f", 60], ["g", 70]] as const) {
      flow.observe(event(id, Status.QUEUED, T0));
      flow.observe(event(id, Status.SENT, T0 + ms));
    }
    // Five samples taken, four kept: the 30 ms one went.
    expect(flow.channel(Channel.EMAIL)).toMatchObject({ e2eP50Ms: 50, e2eP99Ms: 70, e2eSamples: 4 });
  });

  it("ignores events of no deliverable channel", () => {
    const flow = createFlowWindow({ clock: fakeClock() });
    flow.observe(event("u", Status.QUEUED, T0, Channel.UNSPECIFIED));
    flow.observe(event("u", Status.SENT, T0 + 5, Channel.UNSPECIFIED));
    expect(flow.stats()).toEqual({ inFlight: 0, dropped: 0, unmatched: 0 });
    expect(flow.channel(Channel.UNSPECIFIED).sentPerSecond).toBe(0);
  });
});
