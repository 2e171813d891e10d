// Herald's error taxonomy: every error raised on purpose says whether trying again can help,
// as kafkajs errors carry `retriable` and BullMQ's UnrecoverableError stops retries. The store,
// the Kafka client and the providers classify a failure where it arises (the one place that
// knows what a SQLSTATE, a broker error or an HTTP status means) into one of these; loops
// retry what is retriable, and the edge (src/server/edge.ts) maps each kind to one gRPC code.

/** The dependencies a role waits for. */
export type Dependency = "database" | "kafka" | "redis";

export abstract class HeraldError extends Error {
  /** Whether the same work, tried again later, may succeed. */
  abstract readonly retriable: boolean;
}

/**
 * A dependency cannot answer right now (unreachable, timed out, shutting down, out of
 * connections, closed): back off and retry. The API answers UNAVAILABLE.
 */
export class UnavailableError extends HeraldError {
  override name = "UnavailableError";
  readonly retriable = true;
  constructor(
    readonly dependency: Dependency,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Herald itself has more work queued than it can finish before callers give up (the accept
 * queue is full): shed this call now rather than let it wait. The API answers
 * RESOURCE_EXHAUSTED with `retry-after-ms` in the trailers.
 */
export class OverloadedError extends HeraldError {
  override name = "OverloadedError";
  readonly retriable = true;
  constructor(
    message: string,
    /** How long to wait before trying again: about the time the queue takes to drain. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/**
 * A tenant sent more than its accept quota allows (src/server/quota/): refused before anything is
 * stored. The API answers RESOURCE_EXHAUSTED with `retry-after-ms` when waiting helps, and
 * without it when it cannot (a CreateBatch larger than the tenant's whole burst).
 */
export class QuotaExceededError extends HeraldError {
  override name = "QuotaExceededError";
  readonly retriable: boolean;
  constructor(
    message: string,
    /** How long until the tokens the call needs are there; undefined: never, split the call. */
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
    this.retriable = retryAfterMs !== undefined;
  }
}

/** A provider failed in a way that may pass: timeouts, 429, 5xx, connection failures. */
export class TransientError extends HeraldError {
  override name = "TransientError";
  readonly retriable = true;
  /** The provider asked to wait at least this long (Retry-After), in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Trying again cannot succeed: invalid address, rejected content, 4xx other than 408/429. */
export class PermanentError extends HeraldError {
  override name = "PermanentError";
  readonly retriable = false;
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
  }
}

/**
 * The caller's input cannot be used as it is (e.g. a NUL character the database cannot store).
 * Its message names the field and the rule and echoes no input; the API answers INVALID_ARGUMENT.
 */
export class InvalidInputError extends HeraldError {
  override name = "InvalidInputError";
  readonly retriable = false;
}

/**
 * Whether `err` is worth retrying. Herald's errors and kafkajs's say so themselves; anything
 * else (a bug, or a failure nobody classified) is `unknown`, and the caller picks.
 */
export function isRetriable(err: unknown, unknown: boolean): boolean {
  if (typeof err === "object" && err !== null) {
    const { retriable } = err as { retriable?: unknown };
    if (typeof retriable === "boolean") return retriable;
  }
  return unknown;
}
