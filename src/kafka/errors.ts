import { UnavailableError } from "../errors.js";

// Kafka's one translation point for failures (STYLE habit 4): kafkajs errors and broker codes
// that mean "Kafka cannot answer right now" become UnavailableError("kafka"), which callers back
// off on and the API answers UNAVAILABLE. Anything else propagates unchanged (kafkajs errors
// carry their own `retriable`).

/** Runs `fn`, rethrowing "cannot reach Kafka" failures as UnavailableError("kafka") and others as they are. */
export async function classified<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UnavailableError || !isUnavailable(err)) throw err;
    throw new UnavailableError("kafka", `kafka unavailable: ${(err as Error).message}`, { cause: err });
  }
}

const UNAVAILABLE_ERRORS = new Set([
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSTimeout",
  "KafkaJSLockTimeout",
]);
const UNAVAILABLE_CODES = new Set([
  "BROKER_NOT_AVAILABLE",
  "LEADER_NOT_AVAILABLE",
  "NOT_LEADER_FOR_PARTITION",
  "REQUEST_TIMED_OUT",
  "NETWORK_EXCEPTION",
  "NOT_ENOUGH_REPLICAS",
  "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
  "GROUP_COORDINATOR_NOT_AVAILABLE",
  "NOT_COORDINATOR_FOR_GROUP",
  "KAFKA_STORAGE_ERROR",
]);

// kafkajs wraps the error that decided it in KafkaJSNumberOfRetriesExceeded (`cause`) and
// per-partition failures in KafkaJSAggregateError (`errors`): look through both.
function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { name, type, errors } = err as Error & { type?: string; errors?: unknown[] };
  if (UNAVAILABLE_ERRORS.has(name) || UNAVAILABLE_CODES.has(type ?? "")) return true;
  if (Array.isArray(errors) && errors.length > 0) return errors.every(isUnavailable);
  return isUnavailable(err.cause);
}

/** Gives up on `work` after `ms` or when `signal` aborts, whichever comes first. */
export async function bounded<T>(work: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  work.catch(() => {}); // it may still settle after we gave up on it
  const deadline = signal ? AbortSignal.any([signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
  let onAbort = () => {};
  const gaveUp = new Promise<never>((_, reject) => {
    onAbort = () => reject(new UnavailableError("kafka", `kafka did not answer within ${ms} ms`, { cause: deadline.reason }));
    if (deadline.aborted) onAbort();
    else deadline.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, gaveUp]);
  } finally {
    deadline.removeEventListener("abort", onAbort);
  }
}
