import { describe, expect, it } from "vitest";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import type { WatchSelection } from "../../src/domain/watch-request.js";
import type { FeedEvent } from "../../src/feed/feed-event.js";
import { SubscriberRegistry } from "../../src/feed/registry.js";
import { Subscription } from "../../src/feed/subscription.js";
import { feedEvent, notificationId, selection } from "../support/feed-events.js";

const N1 = notificationId(0x1001);
const N2 = notificationId(0x1002);

/** A registry whose subscriptions unregister themselves on close, as the feed wires them. */
function registry() {
  const r = new SubscriberRegistry();
  const subscribe = (over: Partial<WatchSelection> = {}, limit = 100): Subscription => {
    const s = new Subscription(0, limit, (closed) => r.remove(closed));
    r.add(selection(over), s);
    return s;
  };
  return { r, subscribe };
}

function drain(s: Subscription): number[] {
  const out: number[] = [];
  for (let e: FeedEvent | undefined; (e = s.take()); ) out.push(e.position);
  return out;
}

describe("SubscriberRegistry", () => {
  it("never hands one tenant's event to another tenant's subscriptions, whatever the selector", () => {
    const { r, subscribe } = registry();
    const a = [subscribe({ tenant: "a" }), subscribe({ tenant: "a", userId: "ada" }), subscribe({ tenant: "a", notificationId: N1 })];
    const b = [subscribe({ tenant: "b" }), subscribe({ tenant: "b", userId: "ada" }), subscribe({ tenant: "b", notificationId: N1 })];

    // Same user id and notification id in both tenants: only the tenant tells them apart.
    r.publish(feedEvent(1, { tenant: "b", userId: "ada", notificationId: N1 }));
    r.publish(feedEvent(2, { tenant: "c", userId: "ada", notificationId: N1 }));
    expect(a.map(drain)).toEqual([[], [], []]);
    expect(b.map(drain)).toEqual([[1], [1], [1]]);

    r.publish(feedEvent(3, { tenant: "a", userId: "ada", notificationId: N1 }));
    expect(a.map(drain)).toEqual([[3], [3], [3]]);
    expect(b.map(drain)).toEqual([[], [], []]);
  });

  it("a tenant-wide subscription gets every event of its tenant", () => {
    const { r, subscribe } = registry();
    const all = subscribe();
    r.publish(feedEvent(1, { userId: "ada", notificationId: N1 }));
    r.publish(feedEvent(2, { userId: "bob", notificationId: N2 }));
    expect(drain(all)).toEqual([1, 2]);
  });

  it("a user subscription gets only that recipient's events", () => {
    const { r, subscribe } = registry();
    const ada = subscribe({ userId: "ada" });
    const bob = subscribe({ userId: "bob" });
    r.publish(feedEvent(1, { userId: "ada" }));
    r.publish(feedEvent(2, { userId: "bob" }));
    r.publish(feedEvent(3, { userId: "carol" }));
    r.publish(feedEvent(4, { userId: "ada" }));
    expect([drain(ada), drain(bob)]).toEqual([[1, 4], [2]]);
  });

  it("a notification subscription gets only that notification's events", () => {
    const { r, subscribe } = registry();
    const n1 = subscribe({ notificationId: N1 });
    const n2 = subscribe({ notificationId: N2 });
    r.publish(feedEvent(1, { notificationId: N1, sequence: 1 }));
    r.publish(feedEvent(2, { notificationId: N2 }));
    r.publish(feedEvent(3, { notificationId: N1, sequence: 2 }));
    expect([drain(n1), drain(n2)]).toEqual([[1, 3], [2]]);
  });

  it("each matching subscription gets the event exactly once, across buckets", () => {
    const { r, subscribe } = registry();
    const subs = [subscribe(), subscribe(), subscribe({ userId: "ada" }), subscribe({ userId: "ada" }), subscribe({ notificationId: N1 })];
    r.publish(feedEvent(7, { userId: "ada", notificationId: N1 }));
    expect(subs.map(drain)).toEqual([[7], [7], [7], [7], [7]]);
  });

  it("applies status and channel filters within every bucket", () => {
    const { r, subscribe } = registry();
    const filters = { statuses: new Set([Status.SENT, Status.FAILED]), channels: new Set([Channel.SMS]) };
    const subs = [subscribe(filters), subscribe({ ...filters, userId: "ada" }), subscribe({ ...filters, notificationId: N1 })];
    const on = { userId: "ada", notificationId: N1 };
    r.publish(feedEvent(1, { ...on, status: Status.SENT, channel: Channel.SMS }));
    r.publish(feedEvent(2, { ...on, status: Status.QUEUED, channel: Channel.SMS }));
    r.publish(feedEvent(3, { ...on, status: Status.FAILED, channel: Channel.EMAIL }));
    r.publish(feedEvent(4, { ...on, status: Status.FAILED, channel: Channel.SMS }));
    expect(subs.map(drain)).toEqual([
      [1, 4],
      [1, 4],
      [1, 4],
    ]);
  });

  it("remove() stops delivery and shrinks size, for every selector; unknown or repeated removes are no-ops", () => {
    const { r, subscribe } = registry();
    const subs = [subscribe(), subscribe({ userId: "ada" }), subscribe({ notificationId: N1 })];
    const other = subscribe({ tenant: "b" });
    expect(r.size).toBe(4);
    for (const s of subs) r.remove(s);
    expect(r.size).toBe(1);
    r.publish(feedEvent(1, { userId: "ada", notificationId: N1 }));
    expect(subs.map(drain)).toEqual([[], [], []]);

    r.remove(subs[0]!);
    r.remove(new Subscription(0, 1, () => {}));
    expect(r.size).toBe(1);
    r.publish(feedEvent(2, { tenant: "b" }));
    expect(drain(other)).toEqual([2]);
  });

  it("a closed subscription unregisters itself, and a new one on the same bucket works after the old bucket emptied", () => {
    const { r, subscribe } = registry();
    const first = subscribe({ userId: "ada" });
    first.close();
    expect(r.size).toBe(0);
    r.publish(feedEvent(1, { userId: "ada" }));
    expect(drain(first)).toEqual([]);

    const again = subscribe({ userId: "ada" });
    const tenantWide = subscribe();
    r.publish(feedEvent(2, { userId: "ada" }));
    expect([drain(again), drain(tenantWide)]).toEqual([[2], [2]]);

    // The last subscription of a tenant leaves; the tenant can come back.
    again.close();
    tenantWide.close();
    expect(r.size).toBe(0);
    const back = subscribe({ notificationId: N1 });
    r.publish(feedEvent(3, { notificationId: N1 }));
    expect(drain(back)).toEqual([3]);
  });

  it("removing one subscription of a bucket leaves the others of that bucket", () => {
    const { r, subscribe } = registry();
    const [x, y] = [subscribe({ userId: "ada" }), subscribe({ userId: "ada" })];
    x.close();
    r.publish(feedEvent(1, { userId: "ada" }));
    expect([drain(x), drain(y)]).toEqual([[], [1]]);
  });

  it("a subscription overflowing during publish is removed; the others in its set still get this event and the next", () => {
    const { r, subscribe } = registry();
    // Set order: first, slow (overflows on its first event), last.
    const first = subscribe();
    const slow = subscribe({}, 0);
    const last = subscribe();
    // The only one in its user bucket, which empties during publish.
    const slowUser = subscribe({ userId: "ada" }, 0);
    const user = subscribe({ userId: "bob" });
    expect(r.size).toBe(5);

    r.publish(feedEvent(1, { userId: "ada" }));
    expect([slow.overflowed, slowUser.overflowed]).toEqual([true, true]);
    expect(r.size).toBe(3);
    r.publish(feedEvent(2, { userId: "ada" }));
    r.publish(feedEvent(3, { userId: "bob" }));
    expect([first, slow, last, slowUser, user].map(drain)).toEqual([[1, 2, 3], [], [1, 2, 3], [], [3]]);
  });

  it("a subscription that overflows first in its set does not cost the rest the event", () => {
    const { r, subscribe } = registry();
    const slow = subscribe({}, 1);
    const others = [subscribe(), subscribe(), subscribe()];
    r.publish(feedEvent(1));
    r.publish(feedEvent(2)); // slow overflows here
    expect(slow.overflowed).toBe(true);
    expect(r.size).toBe(3);
    expect(others.map(drain)).toEqual([
      [1, 2],
      [1, 2],
      [1, 2],
    ]);
  });

  it("maxQueued() is the largest queue of any subscription", () => {
    const { r, subscribe } = registry();
    expect(r.maxQueued()).toBe(0);
    const ada = subscribe({ userId: "ada" });
    subscribe({ userId: "bob" });
    const all = subscribe();
    r.publish(feedEvent(1, { userId: "ada" }));
    r.publish(feedEvent(2, { userId: "ada" }));
    r.publish(feedEvent(3, { userId: "bob" }));
    expect(r.maxQueued()).toBe(3);
    drain(all);
    expect(r.maxQueued()).toBe(2);
    drain(ada);
    expect(r.maxQueued()).toBe(1);
  });
});
