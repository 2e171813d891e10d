import { TransientError } from "../../errors.js";

// Every adapter (HTTP and SMTP) bounds each send by its own timer, so a provider that hangs
// costs one timeout, not a worker slot forever.

/** A send's own deadline joined with the caller's signal: whichever comes first aborts the work. */
export interface Deadline {
  signal: AbortSignal;
  /** The error for an abort: "timed out after N ms" when the deadline passed, "canceled" otherwise. */
  abortError(provider: string, cause: unknown): TransientError | undefined;
  /** Stops the timer and unhooks from the caller's signal; call it when the send is over. */
  dispose(): void;
}

// Not AbortSignal.any([caller, AbortSignal.timeout(ms)]): on Node 20 every any() stays referenced
// by a long-lived input signal (a worker's shutdown signal, passed to every send) until that one
// aborts; measured: 200k sends left 200k dependants and ~12 MB of heap after GC (nodejs/node#55351).
export function deadline(caller: AbortSignal, timeoutMs: number): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  timer.unref();
  const onAbort = () => controller.abort(caller.reason);
  if (caller.aborted) onAbort();
  else caller.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    abortError(provider, cause) {
      if (timedOut) return new TransientError(`${provider}: timed out after ${timeoutMs} ms`, { cause });
      if (caller.aborted) return new TransientError(`${provider}: canceled before the provider answered`, { cause });
      return undefined;
    },
    dispose() {
      clearTimeout(timer);
      caller.removeEventListener("abort", onAbort);
    },
  };
}

