import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { NotificationSchema, Status } from "../../gen/herald/v1/notification_pb.js";
import { NotificationService, WatchStatusRequestSchema, type WatchStatusResponse } from "../../gen/herald/v1/notification_service_pb.js";
import type { FeedEvent } from "../../src/feed/feed-event.js";
import { Subscription } from "../../src/feed/subscription.js";
import type { WatchSelection } from "../../src/domain/watch-request.js";
import { createStreamLimiter } from "../../src/server/stream-limiter.js";
import { feedEvent, notificationId } from "../support/feed-events.js";
import { drain, failure, NOW, recorded, routerCursors, startRouterHerald, TENANT, type RouterFakes } from "../support/router.js";
import { waitFor } from "../support/wait.js";

// WatchStatus in-process (test/support/router.ts) over a fake feed made of real Subscriptions:
// argument checks, the snapshot and catch-up phases, the "caught up" heartbeat, live events,
// and how a stream ends.

const ID = notificationId(7);

/** A feed at `position` whose subscriptions the test pushes to. */
function fakeFeed(position: number, backlog?: FeedEvent[]) {
  const subscriptions: Subscription[] = [];
  const selections: WatchSelection[] = [];
  const feed: NonNullable<NonNullable<RouterFakes["watch"]>["feed"]> = {
    position: () => position,
    subscribe(selection, opts) {
      selections.push(selection);
      const subscription = new Subscription(position, opts.limit, () => undefined);
      subscriptions.push(subscription);
      return backlog ? { subscription, backlog } : { subscription };
    },
  };
  return { feed, subscriptions, selections };
}

const ev = (position: number, init: Parameters<typeof feedEvent>[1] = {}) => feedEvent(position, { tenant: TENANT, ...init });
/** A cursor for `position`, as the stream would have given it (for `after`). */
const cursor = (position: number) => routerCursors.encode(TENANT, position);
/** The position a cursor the stream gave names: cursors are sealed, so they are compared by it. */
const at = (c: string) => routerCursors.decode(TENANT, c);

/** Opens a stream and reads it one message at a time. */
function open(fakes: RouterFakes, req: MessageInitShape<typeof WatchStatusRequestSchema>) {
  const h = startRouterHerald(fakes);
  const abort = new AbortController();
  const it = h.client(NotificationService).watchStatus(req, { signal: abort.signal })[Symbol.asyncIterator]();
  return {
    async next(): Promise<WatchStatusResponse> {
      const r = await it.next();
      if (r.done) throw new Error("the stream ended");
      return r.value;
    },
    /**
     * Leaves while the stream waits for its next message. (The in-memory transport runs the
     * handler only as the client pulls, so it is pulled once more to be waiting at all.)
     */
    async leave(): Promise<void> {
      const pending = it.next();
      abort.abort();
      await pending.catch(() => undefined);
    },
    h,
  };
}

const kind = (m: WatchStatusResponse) => [m.kind.case, at(m.cursor)];

describe("WatchStatus", () => {
  it("is INVALID_ARGUMENT naming the broken field", async () => {
    const client = startRouterHerald().client(NotificationService);
    const refused = (req: MessageInitShape<typeof WatchStatusRequestSchema>) => failure(drain(client.watchStatus(req)));
    expect(await refused({ selector: { case: "userId", value: "" } })).toEqual({
      code: "InvalidArgument",
      message: "user_id: must not be empty (leave the selector unset to watch the whole tenant)",
    });
    expect(await refused({ selector: { case: "notificationId", value: "7" } })).toEqual({
      code: "InvalidArgument",
      message: "notification_id: must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
    });
    expect(await refused({ statuses: [Status.SENT, 99 as Status] })).toEqual({
      code: "InvalidArgument",
      message: "statuses[1]: must be a known status other than STATUS_UNSPECIFIED",
    });
    expect(await refused({ after: "not-a-cursor" })).toEqual({ code: "InvalidArgument", message: "after: must be a cursor from a previous WatchStatusResponse" });
    // Another tenant's cursor opens for nobody else.
    expect(await refused({ after: routerCursors.encode("another-tenant", 5) })).toEqual({ code: "InvalidArgument", message: "after: must be a cursor from a previous WatchStatusResponse" });
    expect(await refused({ snapshotSince: timestampFromMs(NOW) })).toEqual({
      code: "InvalidArgument",
      message: "snapshot_since: is only allowed with snapshot",
    });
  });

  it("is NOT_FOUND for a notification the tenant does not have, and gives its stream slot back", async () => {
    const exists = recorded(() => false);
    const streams = createStreamLimiter({ perKey: 1, total: 1 });
    const { feed } = fakeFeed(0);
    const fakes: RouterFakes = {
      watch: {
        feed,
        streams,
        snapshots: { exists },
      },
    };
    const client = startRouterHerald(fakes).client(NotificationService);
    const req = { selector: { case: "notificationId" as const, value: ID.toUpperCase() } };
    expect(await failure(drain(client.watchStatus(req)))).toEqual({ code: "NotFound", message: `notification ${ID} not found` });
    expect(exists.calls).toEqual([[TENANT, ID]]);
    expect(streams.open()).toBe(0);
  });

  it("sends the snapshot, a caught-up heartbeat, then live events it does not already reflect", async () => {
    const { feed, subscriptions, selections } = fakeFeed(10);
    const since: Date[] = [];
    const now = create(NotificationSchema, { id: ID, status: Status.SENDING });
    const w = open(
      {
        watch: {
          feed,
          snapshots: {
            exists: () => Promise.resolve(true),
            snapshot: (_selection, s) => {
              since.push(s);
              return Promise.resolve([{ notification: now, lastSequence: 3 }]);
            },
          },
          limits: { snapshotWindowMs: 60_000 },
        },
      },
      { selector: { case: "userId", value: "ada" }, snapshot: true },
    );
    const first = await w.next();
    expect(kind(first)).toEqual(["snapshot", 10]);
    expect(first.kind.value).toMatchObject({ id: ID, status: Status.SENDING });
    expect(since).toEqual([new Date(NOW - 60_000)]);
    expect(selections[0]).toMatchObject({ tenant: TENANT, userId: "ada" });
    expect(kind(await w.next())).toEqual(["heartbeat", 10]);

    const sub = subscriptions[0]!;
    sub.push(ev(11, { notificationId: ID, sequence: 3, status: Status.SENDING })); // already in the snapshot
    sub.push(ev(12, { notificationId: ID, sequence: 4, status: Status.SENT }));
    const live = await w.next();
    expect(kind(live)).toEqual(["event", 12]);
    expect(live.kind.value).toMatchObject({ notificationId: ID, sequence: 4, status: Status.SENT });

    await w.leave();
    await waitFor("the stream to close its subscription", () => sub.closed);
  });

  it("resumes after a cursor from the feed's ring, then says it is caught up", async () => {
    const { feed } = fakeFeed(6, [ev(5), ev(6)]);
    const w = open({ watch: { feed } }, { after: cursor(4), snapshot: true });
    expect(kind(await w.next())).toEqual(["event", 5]);
    expect(kind(await w.next())).toEqual(["event", 6]);
    expect(kind(await w.next())).toEqual(["heartbeat", 6]);
    await w.leave();
  });

  it("resumes from the store when the ring does not reach back", async () => {
    const { feed } = fakeFeed(9);
    const read = recorded((_selection: WatchSelection, _after: number, _upTo: number, _limit: number) => [ev(3), ev(8)]);
    const w = open({ watch: { feed, feedStore: { read } } }, { after: cursor(2) });
    expect(kind(await w.next())).toEqual(["event", 3]);
    expect(kind(await w.next())).toEqual(["event", 8]);
    // Caught up to where the subscription starts, whatever (8, 9] held.
    expect(kind(await w.next())).toEqual(["heartbeat", 9]);
    expect(read.calls.map(([selection, ...rest]) => [selection.tenant, ...rest])).toEqual([[TENANT, 2, 9, 500]]);
    await w.leave();
  });

  it("ends UNAVAILABLE with a resume cursor when the feed closes under it", async () => {
    const { feed, subscriptions } = fakeFeed(20);
    const h = startRouterHerald({ watch: { feed } });
    const messages: WatchStatusResponse[] = [];
    const stream = (async () => {
      for await (const m of h.client(NotificationService).watchStatus({})) {
        messages.push(m);
        if (m.kind.case === "heartbeat") subscriptions[0]!.close();
      }
    })();
    const refused = await failure(stream);
    expect(refused.code).toBe("Unavailable");
    const resume = /^server shutting down; resume with after="(h2\.[A-Za-z0-9_-]+)"$/.exec(refused.message);
    expect(at(resume![1]!)).toBe(20);
    expect(messages.map(kind)).toEqual([["heartbeat", 20]]);
  });

  it("is RESOURCE_EXHAUSTED past the per-key stream limit", async () => {
    const { feed } = fakeFeed(0);
    const streams = createStreamLimiter({ perKey: 1, total: 10 });
    const first = open({ watch: { feed, streams } }, {});
    expect(kind(await first.next())).toEqual(["heartbeat", 0]);
    const second = first.h.client(NotificationService);
    expect(await failure(drain(second.watchStatus({})))).toEqual({
      code: "ResourceExhausted",
      message: "too many WatchStatus streams for this API key (limit 1); close one or retry later",
    });
    await first.leave();
    await waitFor("the first stream's slot to come back", () => streams.open() === 0);
  });
});
