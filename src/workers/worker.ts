import { setMaxListeners } from "node:events";
import { fromBinary } from "@bufbuild/protobuf";
import { DispatchSchema, type Dispatch } from "../../gen/herald/v1/dispatch_pb.js";
import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { ConsumedBatch, ConsumedMessage } from "../kafka/consumer.js";
import type { Kafka, KafkaConsumer } from "../kafka/kafka.js";
import { channelName, channelTopic } from "../kafka/topics.js";
import type { Logger } from "../log.js";
import { DeliveryAbandonedError, type DeliveryCounters, type DeliveryHandler, type DeliverySignals } from "./delivery.js";
import { createWatermark, runKeyed } from "./keyed-runner.js";
import { createSlots } from "./slots.js";

// One channel's worker: the consumer group herald-worker-<channel> on
// herald.<channel>, feeding the delivery handler. Each partition batch runs
// through the keyed runner (one lane per recipient, all lanes sharing
// `maxInFlight` slots; the handler bounds the sends among them), and the batch commits only its watermark: the lowest
// offset whose outcome is not yet stored. A crash therefore redelivers
// everything unfinished (and possibly some finished records, which the
// claim turns into no-ops), never skips anything.

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
  /** How often a running batch heartbeats and commits its progress. @defaultValue 1000 */
  progressIntervalMs?: number;
  /** Pause before a batch whose records failed unexpectedly is fetched again (no hot loop on a bug). @defaultValue 1000 */
  failurePauseMs?: number;
}

export interface ChannelWorker {
  /** Joins the group and starts consuming; resolves once consumption started. */
  start(): Promise<void>;
  /** Stops fetching, lets in-flight attempts finish and store outcomes (bounded), commits, leaves the group. Idempotent. */
  close(): Promise<void>;
  readonly counters: DeliveryCounters;
}

/** The handler failed for a reason other than shutdown (a bug): logged where the record is known. */
class HandlerFailedError extends Error {
  override name = "HandlerFailedError";
}

export function createChannelWorker(deps: ChannelWorkerDeps): ChannelWorker {
  const { channel, handler, maxInFlight } = deps;
  const { drainTimeoutMs = 10_000, progressIntervalMs = 1000, failurePauseMs = 1000 } = deps;
  const name = channelName(channel);
  const log = deps.log.child({ channel: name });
  const slots = createSlots(maxInFlight);
  const stopping = new AbortController();
  const aborting = new AbortController();
  // Every attempt in flight listens on these (waits, the rate limiter, the
  // provider's request); `maxInFlight` listeners at once is normal, not a leak.
  setMaxListeners(0, stopping.signal, aborting.signal);
  let consumer: KafkaConsumer | undefined;
  let closing: Promise<void> | undefined;

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
      if (!(err instanceof DeliveryAbandonedError)) {
        const { notificationId, tenant, attempt } = dispatch;
        log.error({ err, notificationId, tenant, attempt, partition: m.partition, offset: m.offset }, "delivery handler failed; the record will be redelivered");
        throw new HandlerFailedError("delivery handler failed", { cause: err });
      }
      throw err;
    }
  }

  async function onBatch(batch: ConsumedBatch): Promise<void> {
    const watermark = createWatermark(batch.messages.map((m) => m.offset));
    // Aborted when this batch must wind down: the worker stops, or the group
    // rebalances and the partition may go to someone else. Records not yet
    // claimed are then left for whoever owns the partition next.
    const revoked = new AbortController();
    const signals: DeliverySignals = { stop: AbortSignal.any([stopping.signal, revoked.signal]), abort: aborting.signal };
    setMaxListeners(0, signals.stop);
    let trouble: Error | undefined; // why the batch wound down early (heartbeat or commit failure)
    let failed = false;
    let committed: string | undefined;

    const commit = async () => {
      const next = watermark.next();
      if (next === undefined || next === committed) return;
      await batch.commit(next);
      committed = next;
    };
    const windDown = (err: unknown) => {
      trouble ??= err instanceof Error ? err : new Error(String(err));
      revoked.abort();
    };
    // Serialized: a heartbeat or commit never overlaps the previous one.
    let progress: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      progress = progress.then(() => batch.heartbeat().then(commit)).catch(windDown);
    }, progressIntervalMs);

    try {
      await runKeyed(batch.messages, slots, {
        keyOf: (m) => m.key ?? "",
        canStart: () => !signals.stop.aborted && batch.isActive(),
        handle: (m) =>
          handleRecord(m, signals).catch((err: unknown) => {
            if (err instanceof HandlerFailedError) failed = true;
            throw err;
          }),
        onFinished: (m) => watermark.finish(m.offset),
      });
    } finally {
      clearInterval(timer);
      await progress;
    }
    // Outcomes are stored for everything below the watermark: commit it even
    // when winding down, so the next owner does not redo them.
    await commit();
    // Rethrown so kafkajs rejoins the group (a rebalance) or retries the batch.
    if (trouble) throw trouble;
    if (failed && !stopping.signal.aborted) await pause(failurePauseMs, stopping.signal);
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
        // More partitions than slots in flight would only queue on the slots.
        partitionsConcurrently: Math.max(1, Math.min(maxInFlight, 64)),
      });
      await consumer.run({ eachBatch: onBatch });
      log.info({ maxInFlight }, "worker consuming");
    },
    close() {
      closing ??= (async () => {
        stopping.abort();
        // kafkajs waits for the batches in flight; this bounds how long they may take.
        const timer = setTimeout(() => aborting.abort(), drainTimeoutMs);
        try {
          await consumer?.close();
        } finally {
          clearTimeout(timer);
          aborting.abort();
        }
        if (consumer) log.info({ counters: handler.counters }, "worker stopped");
      })();
      return closing;
    },
  };
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
