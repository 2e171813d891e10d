import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  WatchStatusResponseSchema,
  type WatchStatusRequest,
  type WatchStatusResponse,
} from "../../../gen/herald/v1/notification_service_pb.js";
import { planWatch, type WatchPlan } from "../../domain/watch-request.js";
import type { CursorCodec } from "../../domain/cursor.js";
import type { FeedEvent } from "../../feed/feed-event.js";
import type { StatusFeed } from "../../feed/feed.js";
import type { Subscription } from "../../feed/subscription.js";
import type { StatusFeedStore } from "../../feed/feed-store.js";
import type { WatchSnapshotStore } from "../../store/watch-snapshot.js";
import { callInfo } from "../call-info.js";
import type { StreamLimiter } from "../stream-limiter.js";
import { cutStream } from "../stream-cut.js";
import { type Clock } from "../../clock.js";
import type { WatchMetrics } from "../../metrics/api.js";

// WatchStatus: catch up (from a cursor, or a snapshot), then live events from this instance's
// feed, with heartbeats while idle. The cursor of a message is the feed position up to which
// the client has everything its selection wants, so `after` resumes with neither gap nor
// repeat on any instance.
//
// A stream opens with the catch-up (or snapshot), then one heartbeat that marks "caught up"
// with the cursor where live events begin, then live events and idle heartbeats.
//
// How a stream ends, for clients to act on (each carries the `herald-resume-cursor` trailer):
// - RESOURCE_EXHAUSTED: the client read too slowly and fell `bufferLimit` events behind;
// - UNAVAILABLE: the server is shutting down.
// Resume with `after` = the last cursor received.

/** Trailer (gRPC) / error metadata (Connect) naming the cursor to resume after. */
export const RESUME_CURSOR_HEADER = "herald-resume-cursor";

export interface WatchLimits {
  /** Idle time before a heartbeat. */
  heartbeatMs: number;
  /** Events a subscriber may fall behind before it is cut off. */
  bufferLimit: number;
  /** Notifications in a recipient or tenant snapshot, at most (the newest). */
  snapshotLimit: number;
  /** Default snapshot_since: this long ago. */
  snapshotWindowMs: number;
}

export interface WatchStatusDeps {
  feed: Pick<StatusFeed, "subscribe" | "position">;
  feedStore: Pick<StatusFeedStore, "read">;
  snapshots: WatchSnapshotStore;
  streams: StreamLimiter;
  limits: WatchLimits;
  /** Aborted when the server shuts down (ctx.signal also aborts when the client leaves). */
  shutdownSignal: AbortSignal;
  clock: Clock;
  /** Seals feed positions per tenant (domain/cursor.ts). */
  cursors: CursorCodec;
  /** Open streams, events written, events dropped; none: not recorded. */
  metrics?: WatchMetrics;
}

const STORE_PAGE = 500;

export function watchStatusHandler(deps: WatchStatusDeps) {
  const { feed, limits, metrics } = deps;

  return async function* watchStatus(req: WatchStatusRequest, ctx: HandlerContext): AsyncGenerator<WatchStatusResponse> {
    const call = callInfo(ctx);
    const plan = planWatch(call.tenant, req, deps.cursors);
    const release = deps.streams.acquire(call.keyId);
    metrics?.streams.inc();
    let subscription: Subscription | undefined;
    try {
      const { notificationId } = plan.selection;
      if (notificationId !== undefined && !(await deps.snapshots.exists(call.tenant, notificationId))) {
        throw new ConnectError(`notification ${notificationId} not found`, Code.NotFound);
      }
      const subscribed = feed.subscribe(plan.selection, { limit: limits.bufferLimit, after: plan.after, dropped: metrics?.droppedBufferFull });
      subscription = subscribed.subscription;
      const stream = new StreamState(subscription.start, (position) => deps.cursors.encode(call.tenant, position));
      // A reader that stopped reading parks this generator at a yield, where the overflow check in
      // live() never runs: the transport ends the call for us instead.
      subscription.cutOff.addEventListener("abort", () => cutStream(ctx.values, behind(stream)), { once: true });

      if (plan.after !== undefined) {
        yield* catchUp(plan, plan.after, subscription.start, subscribed.backlog, stream);
        // A cursor ahead of this instance (it lags the one that issued it): skip up to it.
        stream.floor = Math.max(plan.after, subscription.start);
        stream.position = stream.floor;
      } else if (plan.snapshot) {
        yield* snapshot(plan, stream);
      }
      // Caught up: say so with the cursor of where live events start. A client that leaves
      // before any event arrives can still resume from here without missing one.
      yield heartbeat(stream);
      yield* live(subscription, stream, ctx.signal);
    } finally {
      subscription?.close();
      release();
      metrics?.streams.dec();
    }
  };

  function behind(stream: StreamState): ConnectError {
    return interrupted(Code.ResourceExhausted, `stream fell more than ${limits.bufferLimit} events behind`, stream);
  }

  /** The selected events in (after, upTo], from the ring when it reaches back, else from PostgreSQL. */
  async function* catchUp(
    plan: WatchPlan,
    after: number,
    upTo: number,
    backlog: FeedEvent[] | undefined,
    stream: StreamState,
  ): AsyncGenerator<WatchStatusResponse> {
    if (backlog) {
      for (const e of backlog) {
        yield stream.event(e);
        metrics?.sent.inc();
      }
      return;
    }
    let from = after;
    while (from < upTo) {
      const page = await deps.feedStore.read(plan.selection, from, upTo, STORE_PAGE);
      for (const e of page) {
        yield stream.event(e);
        metrics?.sent.inc();
      }
      if (page.length < STORE_PAGE) return;
      from = page[page.length - 1]!.position;
    }
  }

  async function* snapshot(plan: WatchPlan, stream: StreamState): AsyncGenerator<WatchStatusResponse> {
    const since = plan.snapshotSince ?? new Date(deps.clock.now() - limits.snapshotWindowMs);
    const items = await deps.snapshots.snapshot(plan.selection, since, limits.snapshotLimit);
    const cursor = stream.cursor();
    for (const item of items) {
      // Live events up to this sequence are already reflected in what we send now.
      stream.reflected.set(item.notification.id, item.lastSequence);
      yield create(WatchStatusResponseSchema, { kind: { case: "snapshot", value: item.notification }, cursor });
    }
  }

  async function* live(subscription: Subscription, stream: StreamState, signal: AbortSignal): AsyncGenerator<WatchStatusResponse> {
    for (;;) {
      const next = subscription.take();
      if (next) {
        if (next.position <= stream.floor) continue;
        const reflected = stream.reflected.get(next.event.notificationId);
        if (reflected !== undefined && next.event.sequence <= reflected) {
          stream.position = next.position;
          continue;
        }
        // Counted once the transport has taken it (asked for the next message): an event still
        // parked at the yield when the stream ends was never written.
        yield stream.event(next);
        metrics?.sent.inc();
        continue;
      }
      if (subscription.overflowed) throw behind(stream);
      // The feed closed under us: this instance is going away.
      if (subscription.closed) throw interrupted(Code.Unavailable, "server shutting down", stream);
      const wake = await subscription.wait(limits.heartbeatMs, signal);
      if (wake === "aborted") {
        if (deps.shutdownSignal.aborted) throw interrupted(Code.Unavailable, "server shutting down", stream);
        return; // the client left
      }
      if (wake === "timeout") {
        // Nothing queued: every selected event up to the feed's position has been sent.
        stream.position = Math.max(stream.position, feed.position());
        yield heartbeat(stream);
      }
    }
  }
}

/** Where one stream stands. */
class StreamState {
  /** Everything selected up to this position has been sent. */
  position: number;
  /** Live events at or below this position were sent in the catch-up (or precede the cursor). */
  floor: number;
  /** After a snapshot: notification id → sequence it already reflects. */
  readonly reflected = new Map<string, number>();

  constructor(
    start: number,
    /** Seals a position for this stream's tenant. */
    private readonly seal: (position: number) => string,
  ) {
    this.position = start;
    this.floor = start;
  }

  /** The cursor of everything sent so far. */
  cursor(): string {
    return this.seal(this.position);
  }

  event(e: FeedEvent): WatchStatusResponse {
    this.position = e.position;
    return create(WatchStatusResponseSchema, { kind: { case: "event", value: e.event }, cursor: this.cursor() });
  }
}

function heartbeat(stream: StreamState): WatchStatusResponse {
  return create(WatchStatusResponseSchema, { kind: { case: "heartbeat", value: { time: timestampNow() } }, cursor: stream.cursor() });
}

function interrupted(code: Code, why: string, stream: StreamState): ConnectError {
  const cursor = stream.cursor();
  return new ConnectError(`${why}; resume with after="${cursor}"`, code, { [RESUME_CURSOR_HEADER]: cursor });
}
