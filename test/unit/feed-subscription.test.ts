import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FeedEvent } from "../../src/feed/feed-event.js";
import { Subscription, type Wake } from "../../src/feed/subscription.js";
import { feedEvent } from "../support/feed-events.js";

/** A subscription and the calls its onClose received. */
function subscription(limit: number, start = 0) {
  const closes: Subscription[] = [];
  const s = new Subscription(start, limit, (closed) => closes.push(closed));
  return { s, closes };
}

function takeAll(s: Subscription): number[] {
  const out: number[] = [];
  for (let e: FeedEvent | undefined; (e = s.take()); ) out.push(e.position);
  return out;
}

/** The wait's outcome once settled, "pending" until then. */
function track(p: Promise<Wake>): { readonly value: Wake | "pending" } {
  const state: { value: Wake | "pending" } = { value: "pending" };
  void p.then((v) => (state.value = v));
  return state;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("Subscription queue", () => {
  it("hands events out in push order, then undefined", () => {
    const { s } = subscription(10, 4);
    expect(s.start).toBe(4);
    expect(s.take()).toBeUndefined();
    for (const p of [5, 6, 7]) s.push(feedEvent(p));
    expect(s.queued).toBe(3);
    expect(s.take()?.position).toBe(5);
    expect(s.queued).toBe(2);
    s.push(feedEvent(8));
    expect(takeAll(s)).toEqual([6, 7, 8]);
    expect(s.queued).toBe(0);
    expect(s.take()).toBeUndefined();
  });

  it("holds exactly `limit` events; the next one overflows it: queue freed, closed, onClose once", () => {
    const { s, closes } = subscription(3);
    for (const p of [1, 2, 3]) s.push(feedEvent(p));
    expect({ queued: s.queued, overflowed: s.overflowed, closed: s.closed, closes: closes.length }).toEqual({
      queued: 3,
      overflowed: false,
      closed: false,
      closes: 0,
    });

    s.push(feedEvent(4));
    expect({ queued: s.queued, overflowed: s.overflowed, closed: s.closed }).toEqual({ queued: 0, overflowed: true, closed: true });
    expect(closes).toEqual([s]);
    expect(s.take()).toBeUndefined();

    // Later pushes and closes change nothing.
    s.push(feedEvent(5));
    s.close();
    expect(s.queued).toBe(0);
    expect(closes).toHaveLength(1);
  });

  it("counts the events queued now, not those ever pushed", () => {
    const { s } = subscription(2);
    s.push(feedEvent(1));
    s.push(feedEvent(2));
    expect(s.take()?.position).toBe(1);
    s.push(feedEvent(3)); // two queued again: still within the limit
    expect(s.overflowed).toBe(false);
    expect(takeAll(s)).toEqual([2, 3]);
    s.push(feedEvent(4));
    s.push(feedEvent(5));
    s.push(feedEvent(6));
    expect(s.overflowed).toBe(true);
  });

  it("with limit 0 overflows on the first event", () => {
    const { s, closes } = subscription(0);
    s.push(feedEvent(1));
    expect(s.overflowed).toBe(true);
    expect(closes).toEqual([s]);
  });

  it("close() is idempotent: onClose once, queue dropped, not an overflow", () => {
    const { s, closes } = subscription(10);
    s.push(feedEvent(1));
    s.close();
    s.close();
    expect(closes).toEqual([s]);
    expect({ closed: s.closed, overflowed: s.overflowed, queued: s.queued }).toEqual({ closed: true, overflowed: false, queued: 0 });
    s.push(feedEvent(2));
    expect(s.take()).toBeUndefined();
  });

  it("keeps order across queue compaction (more than 1024 events taken)", () => {
    const { s } = subscription(100_000);
    for (const p of range(1, 3000)) s.push(feedEvent(p));
    const first = Array.from({ length: 2000 }, () => s.take()!.position);
    expect(first).toEqual(range(1, 2000));
    expect(s.queued).toBe(1000);
    for (const p of range(3001, 4000)) s.push(feedEvent(p));
    expect(s.queued).toBe(2000);
    expect(takeAll(s)).toEqual(range(2001, 4000));

    // Interleaved: two in, one out, so compaction runs many times with events still queued.
    const { s: t } = subscription(100_000);
    const taken: number[] = [];
    let next = 1;
    for (let round = 0; round < 5000; round++) {
      t.push(feedEvent(next++));
      t.push(feedEvent(next++));
      taken.push(t.take()!.position);
    }
    expect(t.queued).toBe(5000);
    taken.push(...takeAll(t));
    expect(taken).toEqual(range(1, 10_000));
  });

  it("counts toward the limit correctly after compaction", () => {
    const { s } = subscription(1500);
    for (const p of range(1, 1500)) s.push(feedEvent(p));
    expect(takeAll(s).length).toBe(1500);
    for (const p of range(1501, 3000)) s.push(feedEvent(p));
    expect({ queued: s.queued, overflowed: s.overflowed }).toEqual({ queued: 1500, overflowed: false });
    s.push(feedEvent(3001));
    expect(s.overflowed).toBe(true);
  });
});

describe("Subscription.wait", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("resolves 'event' at once when something is queued, even with an aborted signal", async () => {
    const { s } = subscription(10);
    s.push(feedEvent(1));
    expect(await s.wait(1000, new AbortController().signal)).toBe("event");
    expect(await s.wait(1000, AbortSignal.abort())).toBe("event");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("resolves 'event' when an event is pushed, and stops its timer", async () => {
    const { s } = subscription(10);
    const wake = track(s.wait(1000, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(500);
    expect(wake.value).toBe("pending");
    s.push(feedEvent(1));
    await vi.advanceTimersByTimeAsync(0);
    expect(wake.value).toBe("event");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("resolves 'timeout' after exactly `ms` when nothing arrives", async () => {
    const { s } = subscription(10);
    const wake = track(s.wait(100, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(99);
    expect(wake.value).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(wake.value).toBe("timeout");
    // A push after the timeout is simply queued.
    s.push(feedEvent(1));
    expect(s.queued).toBe(1);
  });

  it("resolves 'aborted' when the signal aborts, or at once when it already has", async () => {
    const { s } = subscription(10);
    const abort = new AbortController();
    const wake = track(s.wait(1000, abort.signal));
    await vi.advanceTimersByTimeAsync(10);
    abort.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(wake.value).toBe("aborted");
    expect(vi.getTimerCount()).toBe(0);

    expect(await s.wait(1000, AbortSignal.abort())).toBe("aborted");
  });

  it("resolves 'event' when the subscription is closed while waiting, and at once once closed", async () => {
    const { s } = subscription(10);
    const wake = track(s.wait(1000, new AbortController().signal));
    s.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(wake.value).toBe("event");
    expect(vi.getTimerCount()).toBe(0);
    expect(await s.wait(1000, AbortSignal.abort())).toBe("event");
  });

  it("resolves 'event' when the subscription overflows while waiting (the stream then sees overflowed)", async () => {
    const { s } = subscription(0);
    const wake = track(s.wait(1000, new AbortController().signal));
    s.push(feedEvent(1));
    await vi.advanceTimersByTimeAsync(0);
    expect(wake.value).toBe("event");
    expect({ overflowed: s.overflowed, queued: s.queued, next: s.take() }).toEqual({ overflowed: true, queued: 0, next: undefined });
  });
});
