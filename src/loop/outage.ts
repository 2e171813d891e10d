import { systemClock, type Clock } from "../clock.js";
import type { Logger } from "../log.js";

// "Log once when it breaks, once when it recovers" (kafkajs's retrier, BullMQ's workers): a
// loop retrying against a dead dependency every few hundred milliseconds would otherwise
// write the same warning thousands of times, and say nothing when it comes back.

export interface OutageLog {
  /** A failed attempt: logged at warn only when it starts an outage. Returns the consecutive failures so far. */
  failed(err: unknown): number;
  /** A successful attempt: logged at info only when it ends an outage, with its length and failure count. */
  succeeded(): void;
  /** Consecutive failures so far (0 while healthy): the attempt number for a backoff. */
  readonly failures: number;
}

export interface OutageMessages {
  /** Logged with the first failure's `err`, e.g. "kafka unavailable; relay backing off". */
  down: string;
  /** Logged with `failures` and `downMs`, e.g. "relay publishing again". */
  up: string;
}

export function createOutageLog(log: Logger, messages: OutageMessages, clock: Clock = systemClock): OutageLog {
  let failures = 0;
  let since = 0;
  return {
    failed(err) {
      if (failures++ === 0) {
        since = clock.now();
        log.warn({ err }, messages.down);
      }
      return failures;
    },
    succeeded() {
      if (failures === 0) return;
      log.info({ failures, downMs: clock.now() - since }, messages.up);
      failures = 0;
    },
    get failures() {
      return failures;
    },
  };
}
