import { fromBinary } from "@bufbuild/protobuf";
import { StatusEventSchema } from "../../gen/herald/v1/notification_pb.js";
import { selects, type WatchSelection } from "../domain/watch-request.js";
import type { ConsumedMessage } from "../kafka/kafka.js";
import type { Logger } from "../log.js";
import type { StatusFeedStore } from "./feed-store.js";
import { FEED_POSITION_HEADER, type FeedEvent } from "./feed-event.js";
import { SubscriberRegistry } from "./registry.js";
import { EventRing } from "./ring.js";
import { Subscription } from "./subscription.js";
import type { Inc } from "../metrics/api.js";

// One API instance's view of the status feed: herald.status records, turned into one gapless
// sequence of positions and handed to this instance's WatchStatus subscribers.
//
// - Order and dedupe: positions are dense and reach Kafka in increasing order (the relay
//   assigns them), so a record at or below the last delivered position is a republished copy
//   and is dropped, and a record beyond last + 1 means the positions between were missed (this
//   instance joined late, or an older many-partition topic reordered them): they are read from
//   PostgreSQL, where every position is committed before its record is published.
// - Liveness without Kafka: a position that has been committed for a whole poll interval and
//   has still not arrived is read from PostgreSQL too, so streams keep moving while Kafka is
//   slow or down (the relay assigns positions before it publishes).
// - One consumer per instance, not per subscriber; no query per event per subscriber.

/** Where the feed's records come from: a herald.status consumer in production, a fake in tests. */
export interface FeedSource {
  /** Starts consuming new records; `onBatch` resolves before the next batch is handed over. */
  start(onBatch: (records: readonly ConsumedMessage[]) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export interface StatusFeedDeps {
  source: FeedSource;
  store: StatusFeedStore;
  log: Logger;
  /** Newest events kept in memory for resumes. */
  ringSize: number;
  /** How often to look for positions that Kafka has not brought. */
  pollMs: number;
}

export interface FeedStats {
  position: number;
  subscribers: number;
  ringSize: number;
  maxQueued: number;
  /** Events read from PostgreSQL because Kafka had not (yet) brought them. */
  filled: number;
  /** Records dropped as republished copies. */
  duplicates: number;
}

export interface StatusFeed {
  /** Reads the current head, then starts consuming; events after that head are delivered. */
  start(): Promise<void>;
  /** The highest position handed to subscribers. */
  position(): number;
  /**
   * Registers a subscriber. Events after `subscription.start` (the current position) reach
   * its queue. With `after`, `backlog` holds its selected events in (after, start] from the
   * ring, or is undefined when the ring does not reach back that far (read the store).
   */
  subscribe(selection: WatchSelection, opts: { limit: number; after?: number; dropped?: Inc }): { subscription: Subscription; backlog?: FeedEvent[] };
  stats(): FeedStats;
  /**
   * Calls `listener` with every event handed to subscribers (every tenant, in position order)
   * until the returned function is called. It runs on the feed's path, so it must be cheap
   * (the operations view's flow window, src/feed/flow-window.ts).
   */
  listen(listener: (event: FeedEvent) => void): () => void;
  /** Stops consuming and ends every subscription. Idempotent. */
  close(): Promise<void>;
}

const FILL_PAGE = 1000;
const YIELD_EVERY = 64;

export function createStatusFeed(deps: StatusFeedDeps): StatusFeed {
  const { source, store, log } = deps;
  const ring = new EventRing(deps.ringSize);
  const registry = new SubscriberRegistry();
  const listeners = new Set<(event: FeedEvent) => void>();
  let last = 0;
  let filled = 0;
  let duplicates = 0;
  let undecodable = 0;
  let listenerFailures = 0;
  let closed = false;
  let poller: NodeJS.Timeout | undefined;
  // The head seen by the previous poll: positions up to it have had a whole interval to arrive.
  let polledHead = 0;
  // Kafka batches and polls take turns, so positions are delivered one at a time, in order.
  let turn: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = turn.then(fn);
    turn = run.catch(() => {});
    return run;
  };

  let sinceYield = 0;
  async function deliver(event: FeedEvent): Promise<void> {
    last = event.position;
    ring.add(event);
    registry.publish(event);
    for (const listener of listeners) {
      // A listener's bug must not stall every stream of this instance (logged once, not per event).
      try {
        listener(event);
      } catch (err) {
        if (listenerFailures++ === 0) log.error({ err }, "status feed listener failed");
      }
    }
    // A fetched batch (or a fill) can hold thousands of events. Handing them all over in one
    // go would put every subscriber that many events behind at once, fast readers too; a pause
    // every few events lets streams write, and readers drain, in between.
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Delivers every position in (last, before) from PostgreSQL. */
  async function fill(before: number): Promise<void> {
    while (last + 1 < before && !closed) {
      const events = await store.between(last, before, FILL_PAGE);
      for (const event of events) {
        if (event.position !== last + 1) {
          // Cannot happen while positions are dense; never stall the feed on it.
          log.error({ expected: last + 1, got: event.position }, "status feed positions are not contiguous; resumes across the gap read the database");
          ring.clear();
        }
        filled++;
        await deliver(event);
      }
      if (events.length === 0) {
        log.error({ after: last, before }, "status feed positions missing from the database; skipping them");
        ring.clear();
        last = before - 1;
      }
    }
  }

  function decode(record: ConsumedMessage): FeedEvent | undefined {
    const raw = record.headers[FEED_POSITION_HEADER];
    const position = raw === undefined ? NaN : Number(raw);
    const tenant = record.headers.tenant;
    try {
      if (!Number.isSafeInteger(position) || position <= 0 || !tenant) throw new Error("no feed position or tenant header");
      return { position, tenant, event: fromBinary(StatusEventSchema, record.value) };
    } catch (err) {
      // Records from before the status feed existed, or not ours: nothing to fan out.
      if (undecodable++ === 0) log.warn({ err, offset: record.offset }, "skipping herald.status records without a feed position");
      return undefined;
    }
  }

  async function onBatch(records: readonly ConsumedMessage[]): Promise<void> {
    await inTurn(async () => {
      for (const record of records) {
        if (closed) return;
        const event = decode(record);
        if (!event) continue;
        if (event.position <= last) {
          duplicates++;
          continue;
        }
        if (event.position > last + 1) await fill(event.position);
        if (event.position === last + 1) await deliver(event);
      }
    });
  }

  async function poll(): Promise<void> {
    if (closed) return;
    try {
      await inTurn(async () => {
        const due = polledHead;
        polledHead = await store.head();
        if (due > last) await fill(due + 1);
      });
    } catch (err) {
      log.warn({ err }, "status feed poll failed");
    } finally {
      if (!closed) poller = setTimeout(() => void poll(), deps.pollMs);
    }
  }

  return {
    async start() {
      last = await store.head();
      polledHead = last;
      await source.start(onBatch);
      poller = setTimeout(() => void poll(), deps.pollMs);
    },
    position: () => last,
    subscribe(selection, opts) {
      const subscription = new Subscription(last, opts.limit, (s) => registry.remove(s), opts.dropped);
      registry.add(selection, subscription);
      if (opts.after === undefined) return { subscription };
      const backlog = ring.after(opts.after, last, (e) => e.tenant === selection.tenant && selects(selection, e.event));
      return { subscription, backlog };
    },
    stats: () => ({
      position: last,
      subscribers: registry.size,
      ringSize: ring.size,
      maxQueued: registry.maxQueued(),
      filled,
      duplicates,
    }),
    listen(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(poller);
      registry.closeAll();
      await source.close();
    },
  };
}
