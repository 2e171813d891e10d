import { setMaxListeners } from "node:events";
import { fromBinary } from "@bufbuild/protobuf";
import { DispatchSchema, type Dispatch } from "../../gen/herald/v1/dispatch_pb.js";
import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { ConsumedBatch, ConsumedMessage, TopicPartition } from "../kafka/consumer.js";
import type { Kafka, KafkaConsumer } from "../kafka/kafka.js";
import { channelName, channelTopic } from "../kafka/topics.js";
import { HeraldError, isRetriable } from "../errors.js";
import type { Logger } from "../log.js";
import { sleep } from "../loop/sleep.js";
import { DeliveryAbandonedError, type DeliveryCounters, type DeliveryHandler, type DeliverySignals } from "./delivery.js";
import { createKeyLanes } from "./key-lanes.js";
import { createPartitionProgress, type PartitionProgress } from "./partition-progress.js";
import { createSlots } from "./slots.js";

// One channel's worker: the consumer group herald-worker-<channel> on
// herald.<channel>, feeding the delivery handler.
//
// Records outlive the batch they were fetched in. kafkajs fetches again only
// once every batch of the last fetch was handled, so a batch that waited for
// its slowest record would leave the provider idle at the end of every fetch.
// Instead a batch hands its records to their lanes (one per recipient, shared
// by all batches: a person's messages stay in order) and returns once the
// partition's previous batch is done: each partition has at most two batches
// in the worker, the one running and the one fetched behind it.
//
// An offset is committed only once the outcome of it and of every record
// before it in the partition is stored (`PartitionProgress`), on a timer and
// at close, so a crash redelivers everything unfinished (and possibly some
// finished records, which the claim turns into no-ops), never skips anything.
// When the group takes a partition away, nothing more of it starts here; what
// runs finishes under its claim, and the next owner's claim of such a record
// waits for that outcome and then skips it.

export interface ChannelWorkerDeps {
  channel: Channel;
  kafka: Pick<Kafka, "consumer">;
  handler: DeliveryHandler;
  /** Records in flight at once, across all partitions this process holds. */
  maxInFlight: number;
  /** Carries no notification fields; the handler adds its own per message. */
  log: Logger;
  /** close() lets attempts in flight finish and store their outcomes for this long, then cancels them. @defaultValue 10000 */
  drainTimeoutMs?: number;
  /** How often progress is committed, and a batch waiting for its partition's previous one heartbeats. @defaultValue 1000 */
  progressIntervalMs?: number;
  /** Pause before a record whose handling failed unexpectedly is tried again (no hot loop on a bug). @defaultValue 1000 */
  failurePauseMs?: number;
  /** Longest a fetch waits on the broker for more records to batch (added latency at low rates). @defaultValue 10 */
  fetchWaitMs?: number;
}

export interface ChannelWorker {
  /** Joins the group and starts consuming; resolves once consumption started. */
  start(): Promise<void>;
  /** Stops fetching, lets in-flight attempts finish and store outcomes (bounded), commits, leaves the group. Idempotent. */
  close(): Promise<void>;
  readonly counters: DeliveryCounters;
}

/** The handler failed for a reason other than shutdown (a bug): logged where the record is known, tried again after a pause. */
class HandlerFailedError extends HeraldError {
  override name = "HandlerFailedError";
  readonly retriable = true;
}

/** One partition as this member holds it, from its assignment until it is taken away. */
interface HeldPartition extends TopicPartition {
  progress: PartitionProgress;
  /** Aborted when the group takes the partition away. */
  revoked: AbortController;
  signals: DeliverySignals;
  /** The last batch's records settled. */
  previous: Promise<void>;
  /** Last offset committed, as Kafka's next record to read. */
  committed?: string;
}

export function createChannelWorker(deps: ChannelWorkerDeps): ChannelWorker {
  const { channel, handler, maxInFlight } = deps;
  const { drainTimeoutMs = 10_000, progressIntervalMs = 1000, failurePauseMs = 1000, fetchWaitMs = 10 } = deps;
  const name = channelName(channel);
  const log = deps.log.child({ channel: name });
  const slots = createSlots(maxInFlight);
  const lanes = createKeyLanes();
  const stopping = new AbortController();
  const aborting = new AbortController();
  // Every attempt in flight listens on these (waits, the rate limiter, the
  // provider's request); `maxInFlight` listeners at once is normal, not a leak.
  setMaxListeners(0, stopping.signal, aborting.signal);
  const held = new Map<string, HeldPartition>();
  const records = new Set<Promise<void>>();
  let consumer: KafkaConsumer | undefined;
  let closing: Promise<void> | undefined;
  let committing: Promise<void> = Promise.resolve();
  let commitTimer: NodeJS.Timeout | undefined;

  const partitionKey = (tp: TopicPartition) => `${tp.topic}|${tp.partition}`;

  function hold(tp: TopicPartition): HeldPartition {
    const key = partitionKey(tp);
    let p = held.get(key);
    if (!p) {
      const revoked = new AbortController();
      const stop = AbortSignal.any([stopping.signal, revoked.signal]);
      setMaxListeners(0, stop);
      p = { topic: tp.topic, partition: tp.partition, progress: createPartitionProgress(), revoked, signals: { stop, abort: aborting.signal }, previous: Promise.resolve() };
      held.set(key, p);
    }
    return p;
  }

  /** After a (re)join: partitions no longer ours start nothing more and are no longer committed. */
  function onAssigned(assigned: readonly TopicPartition[]): void {
    const mine = new Set(assigned.map(partitionKey));
    for (const [key, p] of held) {
      if (mine.has(key)) continue;
      p.revoked.abort();
      held.delete(key);
      log.info({ partition: p.partition }, "partition taken away; what runs finishes, nothing more of it starts here");
    }
  }

  async function handleRecord(m: ConsumedMessage, signals: DeliverySignals): Promise<void> {
    let dispatch: Dispatch;
    try {
      dispatch = fromBinary(DispatchSchema, m.value);
    } catch (err) {
      // A record that cannot be decoded can never be delivered; holding the
      // partition for it would stop every recipient behind it.
      handler.counters.malformed++;
      log.error({ err, partition: m.partition, offset: m.offset }, "undecodable dispatch record; skipping");
      return;
    }
    try {
      await handler.handle(dispatch, signals);
    } catch (err) {
      // The worker stopped: the record stays unfinished. Anything else is a bug, tried again.
      if (err instanceof DeliveryAbandonedError) throw err;
      const { notificationId, tenant, attempt } = dispatch;
      log.error({ err, notificationId, tenant, attempt, partition: m.partition, offset: m.offset }, "delivery handler failed; the record will be tried again");
      throw new HandlerFailedError("delivery handler failed", { cause: err });
    }
  }

  /**
   * One record's turn in its lane. Never rejects: a record not finished (the worker stopped, the
   * partition was taken away) stays below the partition's committed offset and comes again.
   */
  async function runRecord(m: ConsumedMessage, p: HeldPartition): Promise<void> {
    const { stop } = p.signals;
    for (;;) {
      if (stop.aborted) return;
      let release: () => void;
      try {
        release = await slots.acquire(stop);
      } catch {
        return; // stopped or taken away while waiting for a slot
      }
      try {
        if (stop.aborted) return;
        await handleRecord(m, p.signals);
        p.progress.finish(m.offset);
        return;
      } catch (err) {
        if (!isRetriable(err, false)) return; // abandoned: the worker stops
      } finally {
        release();
      }
      // The lane waits here, so nothing of this recipient overtakes the record.
      await sleep(failurePauseMs, stop);
    }
  }

  async function onBatch(batch: ConsumedBatch): Promise<void> {
    // A batch fetched before a rejoin that took its partition away: not ours to hold.
    if (stopping.signal.aborted || !batch.isActive()) return;
    const p = hold(batch);
    const settled: Promise<void>[] = [];
    let last: string | undefined;
    for (const m of batch.messages) {
      // Past this point the partition is someone else's, or the worker stops:
      // the rest is fetched again from the committed offset.
      if (p.signals.stop.aborted || !batch.isActive()) break;
      last = m.offset;
      // Already held or finished here: fetched again after a rejoin.
      if (!p.progress.admit(m.offset)) continue;
      const record = lanes.run(m.key ?? "", () => runRecord(m, p));
      records.add(record);
      void record.then(() => records.delete(record));
      settled.push(record);
    }
    // The next fetch starts after what was taken on; nothing is committed here.
    if (last !== undefined) batch.resolve((BigInt(last) + 1n).toString());
    const previous = p.previous;
    p.previous = Promise.all(settled).then(() => {});
    await waitBeating(previous, batch, p.signals.stop);
  }

  /**
   * Waits for `done` while keeping this member in the group. Rejects when a heartbeat does
   * (the group rebalances): kafkajs then rejoins, and onAssigned says what stays ours.
   */
  function waitBeating(done: Promise<void>, batch: ConsumedBatch, stop: AbortSignal): Promise<void> {
    if (stop.aborted) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let beat: Promise<void> = Promise.resolve();
      const finish = (err?: unknown) => {
        clearInterval(timer);
        stop.removeEventListener("abort", onStop);
        if (err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error("heartbeat failed", { cause: err }));
      };
      const onStop = () => finish();
      const timer = setInterval(() => {
        beat = beat.then(() => batch.heartbeat()).catch(finish);
      }, progressIntervalMs);
      stop.addEventListener("abort", onStop, { once: true });
      void done.then(onStop);
    });
  }

  /** Commits each held partition's progress that moved since its last commit. Serialized; never rejects. */
  function commitProgress(): Promise<void> {
    committing = committing.then(async () => {
      if (!consumer) return;
      const moved = [...held.values()].flatMap((p) => {
        const offset = p.progress.next();
        return offset === undefined || offset === p.committed ? [] : [{ p, offset }];
      });
      if (moved.length === 0) return;
      try {
        await consumer.commit(moved.map(({ p, offset }) => ({ topic: p.topic, partition: p.partition, offset })));
        for (const { p, offset } of moved) p.committed = offset;
      } catch (err) {
        // A rebalance in progress, or Kafka away: the next round commits the
        // (then further) progress; until then a crash only redoes no-ops.
        log.warn({ err }, "committing progress failed; will try again");
      }
    });
    return committing;
  }

  return {
    counters: handler.counters,
    async start() {
      if (closing || consumer) return;
      consumer = deps.kafka.consumer({
        groupId: `herald-worker-${name}`,
        topics: [channelTopic(channel)],
        // A new group must deliver what was published before it first joined.
        fromBeginning: true,
        // Batches only hand records over and wait for their partition's previous
        // batch, so a handful at once keeps every partition's lane fed.
        partitionsConcurrently: Math.max(1, Math.min(maxInFlight, 64)),
        // A batch returns at once when its partition's previous one is done, so
        // the worker fetches again at once: without a floor every fetch would
        // carry a record or two, and the fetches, not the deliveries, would take
        // the worker's CPU. The broker holds a fetch until 64 KiB are ready (a
        // few hundred Dispatches) or `fetchWaitMs` passed.
        fetchMinBytes: 64 * 1024,
        fetchMaxWaitMs: fetchWaitMs,
        onAssigned,
      });
      await consumer.run({ eachBatch: onBatch });
      commitTimer = setInterval(() => void commitProgress(), progressIntervalMs);
      log.info({ maxInFlight }, "worker consuming");
    },
    close() {
      closing ??= (async () => {
        stopping.abort();
        // Records in flight finish and store their outcomes; this bounds how long they may take.
        const timer = setTimeout(() => aborting.abort(), drainTimeoutMs);
        try {
          while (records.size > 0) await Promise.all(records);
        } finally {
          clearTimeout(timer);
          aborting.abort();
        }
        clearInterval(commitTimer);
        // The group still has this member: what finished is committed before it leaves.
        await commitProgress();
        await consumer?.close();
        if (consumer) log.info({ counters: handler.counters }, "worker stopped");
      })();
      return closing;
    },
  };
}
