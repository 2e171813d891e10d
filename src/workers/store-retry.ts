import { isRetriable, UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { backoffCeilingMs } from "../loop/backoff.js";
import { createOutageLog } from "../loop/outage.js";
import { sleep } from "../loop/sleep.js";
import { abandonedWhileWaiting } from "./delivery-signals.js";

// A delivery's own database failing is neither an outcome nor a reason to give the record up:
// the step (claim, template fetch, outcome) is tried again after a pause until it goes through
// or the worker stops.

export interface StoreRetryOptions {
  log: Logger;
  /** Each retry is counted here. */
  onRetry: () => void;
  /** Cap of the pause between retries. */
  maxBackoffMs: number;
  random: () => number;
}

/** Runs `op` until it succeeds; retries the failures `retry` accepts, pausing longer each time. Rejects with DeliveryAbandonedError once `signal` aborts. */
export type StoreRetry = <T>(op: () => Promise<T>, signal: AbortSignal, retry?: (err: unknown) => boolean) => Promise<T>;

export function createStoreRetry(opts: StoreRetryOptions): StoreRetry {
  const { log, onRetry, maxBackoffMs, random } = opts;
  // Shared by all messages in flight: an outage is logged once when it starts
  // and once when it ends, not once per message or per retry. A failure that is
  // not the database being away (a bug) is retried all the same, but says so.
  const storeDown = createOutageLog(log, { down: "database unavailable; deliveries wait and retry", up: "database answers again; deliveries resume" });
  const storeFailing = createOutageLog(log, { down: "storing a delivery step failed; retrying", up: "storing delivery steps works again" });

  return async (op, signal, retry = (err) => isRetriable(err, true)) => {
    for (let failures = 0; ; ) {
      try {
        const result = await op();
        storeDown.succeeded();
        storeFailing.succeeded();
        return result;
      } catch (err) {
        if (!retry(err)) throw err;
        (err instanceof UnavailableError ? storeDown : storeFailing).failed(err);
        failures++;
        onRetry();
        // Half fixed, half random: never a hot loop, and workers spread out when it returns.
        const ceiling = backoffCeilingMs(failures, { baseMs: 100, capMs: maxBackoffMs });
        if (!(await sleep(ceiling / 2 + (random() * ceiling) / 2, signal))) throw abandonedWhileWaiting();
      }
    }
  };
}
