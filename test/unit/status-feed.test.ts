import { toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Status, StatusEventSchema } from "../../gen/herald/v1/notification_pb.js";
import { FEED_POSITION_HEADER, type FeedEvent } from "../../src/feed/feed-event.js";
import { createStatusFeed, type FeedSource, type StatusFeed } from "../../src/feed/feed.js";
import type { Subscription } from "../../src/feed/subscription.js";
import type { ConsumedMessage } from "../../src/kafka/kafka.js";
import type { StatusFeedStore } from "../../src/feed/feed-store.js";
import { feedEvent, positions, selection, type EventInit } from "../support/feed-events.js";

// createStatusFeed with a fake herald.status source (the test hands it batches) and an
// in-memory status feed store whose head the test moves, as the relay leader would.

const POLL_MS = 100;
const FILL_PAGE = 1000; // the feed's page size for store reads

/** The store side: positions are "assigned" (committed, head moved) by the test. */
function fakeStore() {
  const events = new Map<number, FeedEvent>();
  let head = 0;
  let failHead: Error | undefined;
  let gate: Promise<void> | undefined;
  let headGate: Promise<void> | undefined;
  const calls = { head: 0, between: [] as Array<[after: number, before: number, limit: number]> };
  const store: StatusFeedStore = {
    async head() {
      calls.head++;
      await headGate;
      if (failHead) throw failHead;
      return head;
    },
    async between(after, before, limit) {
      calls.between.push([after, before, limit]);
      await gate;
      return [...events.values()]
        .filter((e) => e.position > after && e.position < before)
        .sort((a, b) => a.position - b.position)
        .slice(0, limit);
    },
    async read() {
      throw new Error("the feed never reads by selector");
    },
  };
  return {
    store,
    calls,
    /** Commits events at the next positions (head + 1, ...) and returns them. */
    assign(...inits: EventInit[]): FeedEvent[] {
      return inits.map((init) => {
        const e = feedEvent(++head, init);
        events.set(e.position, e);
        return e;
      });
    },
    /** `n` default events at the next positions. */
    assignN(n: number): FeedEvent[] {
      return this.assign(...Array.from({ length: n }, () => ({})));
    },
    /** Loses a committed position (the "cannot happen" path). */
    lose(position: number) {
      events.delete(position);
    },
    failHeadWith(err: Error | undefined) {
      failHead = err;
    },
    /** head() waits for the returned release. */
    holdHead(): () => void {
      let release!: () => void;
      headGate = new Promise((r) => (release = r));
      return () => {
        headGate = undefined;
        release();
      };
    },
    /** between() waits for the returned release. */
    holdReads(): () => void {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

/** The Kafka side: the feed registers its handler; the test hands it batches. */
function fakeSource() {
  let handler: ((records: readonly ConsumedMessage[]) => Promise<void>) | undefined;
  const state = { starts: 0, closes: 0 };
  let offset = 0;
  const source: FeedSource = {
    async start(onBatch) {
      state.starts++;
      handler = onBatch;
    },
    async close() {
      state.closes++;
    },
  };
  return {
    source,
    state,
    /** Hands one batch to the feed, as the consumer would, and waits until it is processed. */
    send(...records: Array<FeedEvent | ConsumedMessage>): Promise<void> {
      if (!handler) throw new Error("the feed has not started its source");
      return handler(records.map((r) => ("position" in r ? record(r, offset++) : r)));
    },
  };
}

/** A herald.status record as the relay publishes it. */
function record(e: FeedEvent, offset = 0, headers: Record<string, string | undefined> = {}): ConsumedMessage {
  const all: Record<string, string | undefined> = {
    [FEED_POSITION_HEADER]: String(e.position),
    tenant: e.tenant,
    "correlation-id": `c-${e.position}`,
    ...headers,
  };
  return {
    topic: "herald.status",
    partition: 0,
    offset: String(offset),
    key: e.event.notificationId,
    value: toBinary(StatusEventSchema, e.event),
    headers: Object.fromEntries(Object.entries(all).filter((kv): kv is [string, string] => kv[1] !== undefined)),
    timestamp: 0,
  };
}

function capture() {
  const lines: Array<{ msg: string; level: number }> = [];
  const log = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s) as { msg: string; level: number }) });
  return { log, lines };
}

const feeds: StatusFeed[] = [];
afterEach(async () => {
  for (const feed of feeds.splice(0)) await feed.close();
  vi.useRealTimers();
});

async function setup(opts: { head?: number; ringSize?: number; pollMs?: number } = {}) {
  const db = fakeStore();
  const src = fakeSource();
  const logs = capture();
  const before = db.assignN(opts.head ?? 0);
  const feed = createStatusFeed({ source: src.source, store: db.store, log: logs.log, ringSize: opts.ringSize ?? 100, pollMs: opts.pollMs ?? 60_000 });
  feeds.push(feed);
  await feed.start();
  return { db, src, logs, feed, before };
}

function drain(s: Subscription): FeedEvent[] {
  const out: FeedEvent[] = [];
  for (let e: FeedEvent | undefined; (e = s.take()); ) out.push(e);
  return out;
}
const drainPositions = (s: Subscription) => positions(drain(s));

/** Lets the feed's pending promise chains (polls, fills) run to the end. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("status feed: order and copies", () => {
  it("starts at the store's head: records at or below it are copies, the next one is delivered", async () => {
    const { db, src, feed, before } = await setup({ head: 5 });
    expect(db.calls.head).toBe(1);
    expect(src.state.starts).toBe(1);
    expect(feed.position()).toBe(5);
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    expect(subscription.start).toBe(5);

    const [six] = db.assignN(1);
    await src.send(before[3]!, before[4]!, six!);
    expect(drain(subscription)).toEqual([six]);
    expect(feed.position()).toBe(6);
    expect(feed.stats()).toMatchObject({ duplicates: 2, filled: 0 });
    expect(db.calls.between).toEqual([]);
  });

  it("delivers every record in position order, across batches, with the record's own event", async () => {
    const { db, src, feed } = await setup();
    const { subscription } = feed.subscribe(selection(), { limit: 1000 });
    const events = db.assignN(200); // more than the feed hands over between pauses
    await src.send(...events.slice(0, 1));
    await src.send(...events.slice(1, 150));
    await src.send(...events.slice(150));
    const got = drain(subscription);
    expect(positions(got)).toEqual(range(1, 200));
    expect(got[0]).toEqual(events[0]);
    expect(got[199]).toEqual(events[199]);
    expect(feed.position()).toBe(200);
    expect(db.calls.between).toEqual([]);
  });

  it("drops republished copies by position and counts them", async () => {
    const { db, src, feed } = await setup({ head: 5 });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7, e8] = db.assignN(3);
    await src.send(e6!, e7!, e6!, e7!);
    await src.send(e8!, e7!, e8!);
    expect(drainPositions(subscription)).toEqual([6, 7, 8]);
    expect(feed.stats()).toMatchObject({ position: 8, duplicates: 4, filled: 0 });
  });
});

describe("status feed: gaps", () => {
  it("fills a gap from the store before the record that revealed it", async () => {
    const { db, src, feed } = await setup({ head: 5 });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7, e8, e9, e10] = db.assignN(5);
    await src.send(e6!, e9!, e10!);
    expect(drain(subscription)).toEqual([e6, e7, e8, e9, e10]);
    expect(db.calls.between).toEqual([[6, 9, FILL_PAGE]]);
    expect(feed.stats()).toMatchObject({ position: 10, filled: 2, duplicates: 0 });

    // The filled positions arriving late from Kafka are copies.
    await src.send(e7!, e8!);
    expect(drain(subscription)).toEqual([]);
    expect(feed.stats()).toMatchObject({ filled: 2, duplicates: 2 });
  });

  it("fills a long gap page by page, in order", async () => {
    const { db, src, feed } = await setup();
    const { subscription } = feed.subscribe(selection(), { limit: 5000 });
    const events = db.assignN(2501);
    await src.send(events[2500]!);
    expect(db.calls.between).toEqual([
      [0, 2501, FILL_PAGE],
      [1000, 2501, FILL_PAGE],
      [2000, 2501, FILL_PAGE],
    ]);
    expect(drainPositions(subscription)).toEqual(range(1, 2501));
    expect(feed.stats()).toMatchObject({ position: 2501, filled: 2500 });
  });

  it("skips positions the store does not have (logged), without stalling, and forgets the ring", async () => {
    const { db, src, feed, logs } = await setup({ head: 5 });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7, , e9, e10, , , e13] = db.assignN(8); // 6..13
    db.lose(8);
    db.lose(11);
    db.lose(12);
    await src.send(e6!);
    await src.send(e10!); // reveals 7..9, of which the store has 7 and 9
    expect(drain(subscription)).toEqual([e6, e7, e9, e10]);
    // The ring holds 9 and 10 only: 7 is served, but not as if 8 had been there.
    expect(feed.subscribe(selection(), { limit: 10, after: 7 }).backlog).toBeUndefined();
    expect(positions(feed.subscribe(selection(), { limit: 10, after: 8 }).backlog)).toEqual([9, 10]);

    await src.send(e13!); // reveals 11..12, which the store does not have at all
    expect(drain(subscription)).toEqual([e13]);
    expect(feed.position()).toBe(13);
    expect(feed.subscribe(selection(), { limit: 10, after: 10 }).backlog).toBeUndefined();
    expect(positions(feed.subscribe(selection(), { limit: 10, after: 12 }).backlog)).toEqual([13]);
    const errors = logs.lines.filter((l) => l.level === 50).map((l) => l.msg);
    expect(errors).toEqual([
      "status feed positions are not contiguous; resumes across the gap read the database",
      "status feed positions missing from the database; skipping them",
    ]);
  });
});

describe("status feed: records it cannot use", () => {
  it("skips records without a usable position or tenant header, warning once", async () => {
    const { db, src, feed, logs } = await setup({ head: 5 });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6] = db.assignN(1);
    const bad = [
      record(e6!, 0, { [FEED_POSITION_HEADER]: undefined }),
      record(e6!, 1, { [FEED_POSITION_HEADER]: "" }),
      record(e6!, 2, { [FEED_POSITION_HEADER]: "abc" }),
      record(e6!, 3, { [FEED_POSITION_HEADER]: "0" }),
      record(e6!, 4, { [FEED_POSITION_HEADER]: "-6" }),
      record(e6!, 5, { [FEED_POSITION_HEADER]: "6.5" }),
      record(e6!, 6, { [FEED_POSITION_HEADER]: "9007199254740993" }),
      record(e6!, 7, { tenant: undefined }),
      record(e6!, 8, { tenant: "" }),
    ];
    await src.send(...bad);
    expect(drain(subscription)).toEqual([]);
    expect(feed.position()).toBe(5);
    await src.send(e6!);
    expect(drain(subscription)).toEqual([e6]);
    expect(feed.stats()).toMatchObject({ duplicates: 0, filled: 0 });
    expect(db.calls.between).toEqual([]);
    expect(logs.lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(["skipping herald.status records without a feed position"]);
  });

  it("skips a record whose value does not decode; its position is filled from the store", async () => {
    const { db, src, feed } = await setup({ head: 5 });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7] = db.assignN(2);
    await src.send({ ...record(e6!), value: new Uint8Array([0xff, 0xff, 0xff]) });
    expect(feed.position()).toBe(5);
    await src.send(e7!);
    expect(drain(subscription)).toEqual([e6, e7]);
    expect(feed.stats()).toMatchObject({ filled: 1, duplicates: 0 });
  });
});

describe("status feed: the poll", () => {
  it("fills positions that stayed missing for a whole interval, not ones just assigned", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { db, feed } = await setup({ head: 5, pollMs: POLL_MS });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7] = db.assignN(2);

    await vi.advanceTimersByTimeAsync(POLL_MS); // first poll: 6 and 7 were only just assigned
    await settle();
    expect(db.calls.head).toBe(2);
    expect(drain(subscription)).toEqual([]);
    expect(db.calls.between).toEqual([]);

    const [e8] = db.assignN(1);
    await vi.advanceTimersByTimeAsync(POLL_MS); // a whole interval later: 6 and 7, but not 8
    await settle();
    expect(drain(subscription)).toEqual([e6, e7]);
    expect(db.calls.between).toEqual([[5, 8, FILL_PAGE]]);
    expect(feed.stats()).toMatchObject({ position: 7, filled: 2 });

    await vi.advanceTimersByTimeAsync(POLL_MS);
    await settle();
    expect(drain(subscription)).toEqual([e8]);
    expect(feed.stats()).toMatchObject({ position: 8, filled: 3 });
  });

  it("does not read again what Kafka brought in the meantime", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { db, src, feed } = await setup({ head: 5, pollMs: POLL_MS });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7, e8] = db.assignN(3);
    await vi.advanceTimersByTimeAsync(POLL_MS);
    await settle();
    await src.send(e6!);
    await vi.advanceTimersByTimeAsync(POLL_MS);
    await settle();
    expect(drain(subscription)).toEqual([e6, e7, e8]);
    expect(db.calls.between).toEqual([[6, 9, FILL_PAGE]]);
    expect(feed.stats()).toMatchObject({ filled: 2 });

    // Everything arrived through Kafka: later polls read nothing.
    const more = db.assignN(2);
    await src.send(...more);
    await vi.advanceTimersByTimeAsync(3 * POLL_MS);
    await settle();
    expect(db.calls.between).toHaveLength(1);
    expect(drainPositions(subscription)).toEqual([9, 10]);
  });

  it("a batch arriving while a poll is filling waits its turn: no copy, no reorder", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { db, src, feed } = await setup({ head: 5, pollMs: POLL_MS });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    const [e6, e7, e8] = db.assignN(3);
    await vi.advanceTimersByTimeAsync(POLL_MS);
    await settle();
    const release = db.holdReads();
    await vi.advanceTimersByTimeAsync(POLL_MS); // the poll is now reading 6..8 from the store
    await settle();
    expect(db.calls.between).toEqual([[5, 9, FILL_PAGE]]);
    const sent = src.send(e7!, e8!);
    await settle();
    expect(drain(subscription)).toEqual([]);
    release();
    await sent;
    expect(drain(subscription)).toEqual([e6, e7, e8]);
    expect(feed.stats()).toMatchObject({ position: 8, filled: 3, duplicates: 2 });
  });

  it("a failed poll is logged and the poll goes on", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { db, feed, logs } = await setup({ head: 5, pollMs: POLL_MS });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    db.failHeadWith(new Error("connection refused"));
    await vi.advanceTimersByTimeAsync(POLL_MS);
    await settle();
    expect(logs.lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(["status feed poll failed"]);

    db.failHeadWith(undefined);
    const [e6] = db.assignN(1);
    await vi.advanceTimersByTimeAsync(2 * POLL_MS);
    await settle();
    expect(drain(subscription)).toEqual([e6]);
  });

  it("stops polling once closed", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { db, feed } = await setup({ head: 5, pollMs: POLL_MS });
    await vi.advanceTimersByTimeAsync(POLL_MS);
    await settle();
    expect(db.calls.head).toBe(2);
    await feed.close();
    db.assignN(1);
    await vi.advanceTimersByTimeAsync(10 * POLL_MS);
    await settle();
    expect(db.calls.head).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a poll in flight when the feed closes does not schedule another", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { db, feed } = await setup({ head: 5, pollMs: POLL_MS });
    const release = db.holdHead();
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(db.calls.head).toBe(2); // the poll waits on the store
    await feed.close();
    release();
    await settle();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * POLL_MS);
    expect(db.calls.head).toBe(2);
  });
});

describe("status feed: subscribe", () => {
  it("without `after`, subscribes from the current position with no backlog", async () => {
    const { db, src, feed } = await setup({ head: 3 });
    await src.send(...db.assignN(2));
    const subscribed = feed.subscribe(selection(), { limit: 10 });
    expect(subscribed).toEqual({ subscription: subscribed.subscription });
    expect(subscribed.subscription.start).toBe(5);
  });

  it("with `after`, returns the selected backlog from the ring, or undefined when the ring does not reach back", async () => {
    const { db, src, feed } = await setup({ head: 5, ringSize: 3 });
    await src.send(
      ...db.assign(
        {}, // 6
        {}, // 7
        { status: Status.QUEUED }, // 8
        { tenant: "other" }, // 9
        { userId: "bob" }, // 10
      ),
    ); // the ring now holds 8, 9, 10
    const backlog = (over: Parameters<typeof selection>[0], after: number) =>
      positions(feed.subscribe(selection(over), { limit: 10, after }).backlog);

    expect(backlog({}, 7)).toEqual([8, 10]); // never another tenant's event
    expect(backlog({ tenant: "other" }, 7)).toEqual([9]);
    expect(backlog({ statuses: new Set([Status.SENT]) }, 7)).toEqual([10]);
    expect(backlog({ userId: "ada" }, 7)).toEqual([8]);
    expect(backlog({}, 8)).toEqual([10]);
    expect(backlog({}, 6)).toBeUndefined(); // 7 is no longer held
    expect(backlog({}, 0)).toBeUndefined();
    expect(backlog({}, 10)).toEqual([]);
    expect(backlog({}, 42)).toEqual([]); // a cursor ahead of this instance
  });

  it("events after the subscription's start reach its queue, not its backlog", async () => {
    const { db, src, feed } = await setup({ head: 5 });
    await src.send(...db.assignN(2));
    const { subscription, backlog } = feed.subscribe(selection(), { limit: 10, after: 5 });
    expect(subscription.start).toBe(7);
    expect(positions(backlog)).toEqual([6, 7]);
    await src.send(...db.assignN(1));
    expect(drainPositions(subscription)).toEqual([8]);
  });

  it("with a ring of 0 every resume reads the store", async () => {
    const { db, src, feed } = await setup({ head: 5, ringSize: 0 });
    await src.send(...db.assignN(2));
    expect(feed.subscribe(selection(), { limit: 10, after: 6 }).backlog).toBeUndefined();
    expect(feed.subscribe(selection(), { limit: 10, after: 7 }).backlog).toEqual([]);
  });
});

describe("status feed: stats and close", () => {
  it("stats() reports position, subscribers, ring, largest queue, fills and copies", async () => {
    const { db, src, feed } = await setup({ head: 5, ringSize: 4 });
    expect(feed.stats()).toEqual({ position: 5, subscribers: 0, ringSize: 0, maxQueued: 0, filled: 0, duplicates: 0 });

    const ada = feed.subscribe(selection({ userId: "ada" }), { limit: 100 }).subscription;
    feed.subscribe(selection({ userId: "bob" }), { limit: 100 });
    const [e6, , , e9] = db.assign({}, {}, { userId: "bob" }, {}, {});
    await src.send(e6!, e9!, e6!);
    expect(feed.stats()).toEqual({ position: 9, subscribers: 2, ringSize: 4, maxQueued: 3, filled: 2, duplicates: 1 });

    drain(ada);
    ada.close();
    expect(feed.stats()).toEqual({ position: 9, subscribers: 1, ringSize: 4, maxQueued: 1, filled: 2, duplicates: 1 });
  });

  it("a subscriber that falls behind is cut off; the feed and the others go on", async () => {
    const { db, src, feed } = await setup();
    const slow = feed.subscribe(selection(), { limit: 2 }).subscription;
    const fast = feed.subscribe(selection(), { limit: 100 }).subscription;
    await src.send(...db.assignN(3));
    expect(slow.overflowed).toBe(true);
    expect(feed.stats()).toMatchObject({ subscribers: 1, position: 3 });
    await src.send(...db.assignN(1));
    expect(drainPositions(fast)).toEqual([1, 2, 3, 4]);
  });

  it("close() closes the source once and delivers nothing after", async () => {
    const { db, src, feed } = await setup({ head: 5 });
    const { subscription } = feed.subscribe(selection(), { limit: 100 });
    await feed.close();
    await feed.close();
    expect(src.state.closes).toBe(1);
    await src.send(...db.assignN(2));
    expect(drain(subscription)).toEqual([]);
    expect(feed.position()).toBe(5);
  });

  // StatusFeed.close() is documented as "Stops consuming and ends every subscription", but it
  // never closes them: a stream waiting on its subscription is only ended by the handler's
  // shutdown signal. See the report.
  it("close() ends every subscription", async () => {
    const { feed } = await setup({ head: 5 });
    const subs = [feed.subscribe(selection(), { limit: 100 }).subscription, feed.subscribe(selection({ userId: "bob" }), { limit: 100 }).subscription];
    await feed.close();
    expect(subs.map((s) => s.closed)).toEqual([true, true]);
    expect(feed.stats().subscribers).toBe(0);
  });
});

describe("status feed: listeners (the operations view's flow window)", () => {
  it("hands every event of every tenant to a listener, in position order, filled ones too, until it unlistens", async () => {
    const { db, src, feed, logs } = await setup({ head: 2 });
    const seen: Array<[number, string]> = [];
    const unlisten = feed.listen((e) => seen.push([e.position, e.tenant]));
    const events = db.assign({ tenant: "acme" }, { tenant: "globex" }, { tenant: "initech" });
    // Position 4 never comes from Kafka: the feed reads it from the store, and listeners get it too.
    await src.send(events[0]!, events[2]!);
    expect(seen).toEqual([
      [3, "acme"],
      [4, "globex"],
      [5, "initech"],
    ]);
    // A listener that throws is logged (once) and stalls neither the feed nor the other listeners.
    const after: number[] = [];
    feed.listen(() => {
      throw new Error("listener bug");
    });
    feed.listen((e) => after.push(e.position));
    unlisten();
    await src.send(...db.assignN(2));
    expect(seen.length).toBe(3);
    expect(after).toEqual([6, 7]);
    expect(feed.position()).toBe(7);
    expect(logs.lines.filter((l) => l.msg === "status feed listener failed").length).toBe(1);
  });
});
