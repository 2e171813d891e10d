import { fromBinary } from "@bufbuild/protobuf";
import { DispatchSchema, type Dispatch } from "../../gen/herald/v1/dispatch_pb.js";
import { HeraldError, isRetriable } from "../errors.js";
import type { ConsumedMessage } from "../kafka/kafka.js";
import type { Logger } from "../log.js";
import { sleep } from "../loop/sleep.js";
import type { DeliveryHandler } from "./delivery.js";
import { DeliveryAbandonedError } from "./delivery-signals.js";
import type { HeldPartition } from "./held-partitions.js";
import type { Slots } from "./slots.js";
import { traceDelivery } from "../tracing/spans.js";

// One record's turn in its recipient's lane: take an in-flight slot, decode, hand it to the
// delivery handler, mark it finished in its partition's progress. Nothing is skipped except a
// record that cannot be decoded; a handler failing for another reason than shutdown (a bug) is
// tried again after a pause, holding the lane so nothing of this recipient overtakes it.

/** The handler failed for a reason other than shutdown (a bug): logged where the record is known, tried again after a pause. */
class HandlerFailedError extends HeraldError {
  override name = "HandlerFailedError";
  readonly retriable = true;
}

export interface RecordRunnerDeps {
  handler: DeliveryHandler;
  /** The worker's in-flight slots. */
  slots: Slots;
  log: Logger;
  /** Pause before a record whose handling failed unexpectedly is tried again. */
  failurePauseMs: number;
}

/**
 * Runs record `m` of partition `p`. Never rejects: a record not finished (the worker stopped,
 * the partition was taken away) stays below the partition's committed offset and comes again.
 */
export type RecordRunner = (m: ConsumedMessage, p: HeldPartition) => Promise<void>;

export function createRecordRunner(deps: RecordRunnerDeps): RecordRunner {
  const { handler, slots, log, failurePauseMs } = deps;

  async function handleRecord(m: ConsumedMessage, p: HeldPartition): Promise<void> {
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
      // The consumer span: child of the relay's publish through the record's traceparent header.
      await traceDelivery(m, dispatch, () => handler.handle(dispatch, p.signals));
    } catch (err) {
      // The worker stopped: the record stays unfinished. Anything else is a bug, tried again.
      if (err instanceof DeliveryAbandonedError) throw err;
      const { notificationId, tenant, attempt, correlationId } = dispatch;
      log.error({ err, notificationId, tenant, attempt, correlationId, partition: m.partition, offset: m.offset }, "delivery handler failed; the record will be tried again");
      throw new HandlerFailedError("delivery handler failed", { cause: err });
    }
  }

  return async (m, p) => {
    const { stop } = p.signals;
    const share = { share: tenantOfKey(m.key) };
    for (;;) {
      if (stop.aborted) return;
      let release: () => void;
      try {
        release = await slots.acquire(stop, share);
      } catch {
        return; // stopped or taken away while waiting for a slot
      }
      try {
        if (stop.aborted) return;
        await handleRecord(m, p);
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
  };
}

/**
 * The tenant a record's Kafka key names (`<tenant>/<user id>`, recordKey in src/outbox/records.ts),
 * read without decoding the record; "" for a key without one (records from before keys had it).
 */
export function tenantOfKey(key: string | null | undefined): string {
  const i = key ? key.indexOf("/") : -1;
  return i > 0 ? key!.slice(0, i) : "";
}
