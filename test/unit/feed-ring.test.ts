import { describe, expect, it } from "vitest";
import { EventRing } from "../../src/feed/ring.js";
import { feedEvent, positions } from "../support/feed-events.js";

const all = () => true;

/** A ring of `capacity` holding positions from..to, added in order. */
function ringWith(capacity: number, from: number, to: number): EventRing {
  const ring = new EventRing(capacity);
  for (let p = from; p <= to; p++) ring.add(feedEvent(p));
  return ring;
}

describe("EventRing", () => {
  it("with capacity 0 holds nothing and never reaches back", () => {
    const ring = ringWith(0, 1, 5);
    expect(ring.size).toBe(0);
    expect(ring.after(4, 5, all)).toBeUndefined();
    expect(ring.after(0, 5, all)).toBeUndefined();
    // At or past the last position there is nothing to miss.
    expect(ring.after(5, 5, all)).toEqual([]);
  });

  it("before filling up, holds everything from the first event", () => {
    const ring = ringWith(5, 11, 13);
    expect(ring.size).toBe(3);
    expect(positions(ring.after(10, 13, all))).toEqual([11, 12, 13]);
    expect(positions(ring.after(11, 13, all))).toEqual([12, 13]);
    expect(ring.after(9, 13, all)).toBeUndefined();
  });

  it("wraps around, keeping the newest `capacity` events in position order", () => {
    const ring = ringWith(3, 1, 7);
    expect(ring.size).toBe(3);
    expect(positions(ring.after(4, 7, all))).toEqual([5, 6, 7]);
    expect(positions(ring.after(5, 7, all))).toEqual([6, 7]);
    expect(positions(ring.after(6, 7, all))).toEqual([7]);

    const long = ringWith(4, 1, 1001);
    expect(positions(long.after(997, 1001, all))).toEqual([998, 999, 1000, 1001]);
    expect(positions(long.after(999, 1001, all))).toEqual([1000, 1001]);
  });

  it("reaches back exactly to the oldest held event, not one further", () => {
    const ring = ringWith(3, 1, 7); // holds 5, 6, 7
    expect(positions(ring.after(4, 7, all))).toEqual([5, 6, 7]); // after the edge: all of it
    expect(ring.after(3, 7, all)).toBeUndefined(); // 4 is gone
    expect(ring.after(0, 7, all)).toBeUndefined();
    expect(ring.after(-1, 7, all)).toBeUndefined();
  });

  it("answers [] at or beyond the last position, even when empty", () => {
    const ring = ringWith(3, 1, 7);
    expect(ring.after(7, 7, all)).toEqual([]);
    expect(ring.after(50, 7, all)).toEqual([]);
    expect(new EventRing(3).after(0, 0, all)).toEqual([]);
    expect(new EventRing(3).after(9, 4, all)).toEqual([]);
  });

  it("applies the filter to the events it returns", () => {
    const ring = new EventRing(8);
    for (let p = 1; p <= 10; p++) ring.add(feedEvent(p, { tenant: p % 2 === 0 ? "acme" : "other" }));
    expect(positions(ring.after(2, 10, (e) => e.tenant === "acme"))).toEqual([4, 6, 8, 10]);
    expect(positions(ring.after(2, 10, (e) => e.tenant === "other"))).toEqual([3, 5, 7, 9]);
    expect(ring.after(2, 10, () => false)).toEqual([]);
    // The filter narrows the answer, never how far back the ring reaches.
    expect(ring.after(1, 10, () => false)).toBeUndefined();
  });

  it("returns the events as added", () => {
    const ring = new EventRing(2);
    const e = feedEvent(1, { userId: "bob" });
    ring.add(e);
    expect(ring.after(0, 1, all)).toEqual([e]);
    expect(ring.after(0, 1, all)![0]).toBe(e);
  });

  it("clear() forgets everything; it fills up again from the next event", () => {
    const ring = ringWith(3, 1, 7);
    ring.clear();
    expect(ring.size).toBe(0);
    expect(ring.after(6, 7, all)).toBeUndefined();

    ring.add(feedEvent(20));
    ring.add(feedEvent(21));
    expect(ring.size).toBe(2);
    expect(positions(ring.after(19, 21, all))).toEqual([20, 21]);
    expect(ring.after(18, 21, all)).toBeUndefined();
    for (let p = 22; p <= 25; p++) ring.add(feedEvent(p));
    expect(positions(ring.after(22, 25, all))).toEqual([23, 24, 25]);
  });
});
