import { setMaxListeners } from "node:events";
import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { ConsumedBatch, GroupTiming } from "../kafka/consumer.js";
import type { Kafka, KafkaConsumer } from "../kafka/kafka.js";
import { channelName, channelTopic, workerGroup, type Lane } from "../kafka/topics.js";
import type { Logger } from "../log.js";
import type { ChannelDeliveryMetrics } from "../metrics/delivery.js";
import { sleep } from "../loop/sleep.js";
import { waitBeating } from "./batch-heartbeat.js";
import type { DeliveryHandler } from "./delivery.js";
import type { DeliveryCounters } from "./delivery-counters.js";
import { createHeldPartitions } from "./held-partitions.js";
import { createKeyLanes } from "./key-lanes.js";
import { createRecordRunner } from "./record-runner.js";
import { createSlots } from "./slots.js";

// One channel lane's worker: the consumer group herald-worker-<channel> on herald.<channel>
// (the main lane), or herald-worker-<channel>-high on herald.<channel>.high (the high lane),
// feeding the delivery handler. The worker role runs one of each per channel: the high lane has
// its own consumer, in-flight slots and recipient lanes, so nothing queued on the main topic
// stands in front of it (a person's HIGH may overtake their earlier NORMAL).
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
  /** Which of the channel's topics and groups. @defaultValue "main" */
  lane?: Lane;
  kafka: Pick<Kafka, "consumer">;
  handler: DeliveryHandler;
  /** Records in flight at once, across all partitions this process holds. */
  maxInFlight: number;
  /** Hand free in-flight slots round robin between the tenants whose records wait (slots.ts). @defaultValue false */
  fair?: boolean;
  /**
   * Records this worker may hold (taken on, not finished) before a batch waits for its partition's
   * previous batch; 0: every batch waits (at most two batches per partition). Fair delivery reads
   * ahead so that another tenant's record behind one tenant's backlog is in reach. @defaultValue 0
   */
  readAhead?: number;
  /** Carries no notification fields; the handler adds its own per message. */
  log: Logger;
  /** close() lets attempts in flight finish and store their outcomes for this long, then cancels them. @defaultValue 10000 */
  drainTimeoutMs?: number;
  /** How often progress is committed, and a batch waiting for its partition's previous one heartbeats. @defaultValue 1000 */
  progressIntervalMs?: number;
  /** Pause before a record whose handling failed unexpectedly is tried again (no hot loop on a bug). @defaultValue 1000 */
  failurePauseMs?: number;
  /**
   * Main lane: after a fetch that brought less than a full batch, how long to wait before fetching
   * again, so that records gather into fewer, larger fetches (latency added to a record that
   * arrives in that wait). @defaultValue 10
   */
  batchLingerMs?: number;
  /**
   * How long the broker holds a fetch while the topic is empty (a long poll: it answers as soon as
   * a record is there): an idle lane fetches this often. close() waits for the fetch in flight,
   * so it also bounds how much longer a shutdown takes. @defaultValue 1000
   */
  longPollMs?: number;
  /** Session, heartbeat and rebalance timeouts of the consumer group. @defaultValue kafkajs' */
  group?: GroupTiming;
  /** Counts the records taken on (herald_worker_records_total). */
  metrics?: Pick<ChannelDeliveryMetrics, "recordsTaken">;
  /** Each (re)join of the consumer group. */
  onGroupJoin?: () => void;
  /** Each fetch request, empty or not. */
  onFetch?: () => void;
}

export interface ChannelWorker {
  /** Joins the group and starts consuming; resolves once consumption started. */
  start(): Promise<void>;
  /** Stops fetching, commits what finished, leaves the group, lets in-flight attempts finish and store outcomes (bounded). Idempotent. */
  close(): Promise<void>;
  readonly counters: DeliveryCounters;
}

/** A main-lane batch this large means records are waiting: fetch again at once. */
const FULL_BATCH_BYTES = 64 * 1024;

export function createChannelWorker(deps: ChannelWorkerDeps): ChannelWorker {
  const { channel, handler, maxInFlight, lane = "main", readAhead = 0 } = deps;
  const { drainTimeoutMs = 10_000, progressIntervalMs = 1000, failurePauseMs = 1000, batchLingerMs = 10, longPollMs = 1000 } = deps;
  const name = channelName(channel);
  const log = deps.log.child(lane === "main" ? { channel: name } : { channel: name, lane });
  const lanes = createKeyLanes();
  const stopping = new AbortController();
  const aborting = new AbortController();
  // Every attempt in flight listens on these (waits, the rate limiter, the
  // provider's request); `maxInFlight` listeners at once is normal, not a leak.
  setMaxListeners(0, stopping.signal, aborting.signal);
  const held = createHeldPartitions({ signals: { stop: stopping.signal, abort: aborting.signal }, log });
  const runRecord = createRecordRunner({ handler, slots: createSlots(maxInFlight, { fair: deps.fair }), log, failurePauseMs });
  const records = new Set<Promise<void>>();
  let consumer: KafkaConsumer | undefined;
  let closing: Promise<void> | undefined;
  let commitTimer: NodeJS.Timeout | undefined;

  const commitProgress = () => (consumer ? held.commit(consumer) : Promise.resolve());

  async function onBatch(batch: ConsumedBatch): Promise<void> {
    // A batch fetched before a rejoin that took its partition away: not ours to hold.
    if (stopping.signal.aborted || !batch.isActive()) return;
    const p = held.hold(batch);
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
    if (settled.length > 0) deps.metrics?.recordsTaken(settled.length);
    // The next fetch starts after what was taken on; nothing is committed here.
    if (last !== undefined) batch.resolve((BigInt(last) + 1n).toString());
    const previous = p.previous;
    p.previous = Promise.all(settled).then(() => {});
    const lingering = lane === "main" && batchLingerMs > 0 && settled.length > 0 && batchBytes(batch) < FULL_BATCH_BYTES;
    // Reading ahead: while the worker holds fewer than readAhead records, the next fetch of this
    // partition follows without waiting for this batch, so a backlog's later records (another
    // tenant's among them) reach the fair slots instead of waiting in Kafka. Offsets are
    // unaffected (the commit is still the lowest unfinished record), and memory stays bounded by
    // readAhead plus one fetch. A small batch still lingers first, so a trickle is fetched in
    // batches rather than record by record.
    if (records.size < readAhead) {
      if (lingering) await sleep(batchLingerMs, p.signals.stop);
      return;
    }
    await Promise.all([waitBeating(previous, batch, p.signals.stop, progressIntervalMs), lingering ? sleep(batchLingerMs, p.signals.stop) : undefined]);
  }

  return {
    counters: handler.counters,
    async start() {
      if (closing || consumer) return;
      consumer = deps.kafka.consumer({
        groupId: workerGroup(channel, lane),
        topics: [channelTopic(channel, lane)],
        // A new group must deliver what was published before it first joined.
        fromBeginning: true,
        // Batches only hand records over and wait for their partition's previous
        // batch, so a handful at once keeps every partition's lane fed.
        partitionsConcurrently: Math.max(1, Math.min(maxInFlight, 64)),
        // Both lanes long-poll: the broker answers a fetch as soon as one record is
        // there and otherwise holds it for `longPollMs`, so an idle worker makes one
        // fetch a second per lane by default. (A 10 ms wait on an empty topic was a
        // hundred empty fetches a second, in this process and on the broker.)
        // Main lane under load: a batch returns at once when its partition's previous
        // one is done, so without a pause every fetch would carry a record or two, and
        // the fetches, not the deliveries, would take the worker's CPU. So a batch
        // short of 64 KiB (a few hundred Dispatches) holds the next fetch for
        // `batchLingerMs` (onBatch), and the records of that time come in one fetch.
        // High lane: few records, each wanted at once: no pause.
        fetchMinBytes: 1,
        fetchMaxWaitMs: longPollMs,
        onAssigned: (assigned) => held.onAssigned(assigned),
        onGroupJoin: deps.onGroupJoin,
        onFetch: deps.onFetch,
        ...deps.group,
      });
      await consumer.run({ eachBatch: onBatch });
      commitTimer = setInterval(() => void commitProgress(), progressIntervalMs);
      log.info({ maxInFlight }, "worker consuming");
    },
    close() {
      closing ??= (async () => {
        stopping.abort();
        clearInterval(commitTimer);
        // Leave the group now, not after the drain: the partitions move to a live member at once
        // instead of standing still while the sends here finish. What finished is committed
        // first (only a member may commit); the new owner fetches the rest again, skips what
        // finished here, and waits for the outcome of what is still running here (its claim),
        // as after any rebalance. kafkajs' disconnect waits for the batches in flight, which
        // return at once on stop, then sends LeaveGroup.
        const leaving = commitProgress()
          .then(() => consumer?.close())
          .catch((err: unknown) => log.warn({ err }, "leaving the group failed; it drops this member after its session timeout"));
        // Records in flight finish and store their outcomes; this bounds how long they may take.
        const timer = setTimeout(() => aborting.abort(), drainTimeoutMs);
        try {
          while (records.size > 0) await Promise.all(records);
        } finally {
          clearTimeout(timer);
          aborting.abort();
        }
        await leaving;
        // The counters are the channel's, shared by both lanes' workers: the main lane reports them
        // (a high-lane outcome stored after this line is in the metrics, not in it).
        if (consumer) {
          if (lane === "main") log.info({ counters: handler.counters }, "worker stopped");
          else log.info("high lane stopped");
        }
      })();
      return closing;
    },
  };
}

/** Payload bytes of a batch's records: near enough to what the fetch carried. */
function batchBytes(batch: ConsumedBatch): number {
  let bytes = 0;
  for (const m of batch.messages) bytes += m.value.length;
  return bytes;
}
