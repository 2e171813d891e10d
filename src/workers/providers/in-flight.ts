import { TransientError } from "../../errors.js";

// A provider's close() refuses new sends and waits for the ones in flight (each bounded by its
// deadline), so a worker's drain ends with every send answered or timed out.

export interface InFlightSends {
  /** Runs `send` and tracks it until it settles; after close(), rejects with a TransientError instead. */
  run<T>(send: () => Promise<T>): Promise<T>;
  /** Refuses new sends; resolves once the ones in flight have settled. Idempotent. */
  close(): Promise<void>;
}

export function createInFlightSends(provider: string): InFlightSends {
  const inflight = new Set<Promise<unknown>>();
  let closing: Promise<void> | undefined;
  return {
    run(send) {
      if (closing) return Promise.reject(new TransientError(`${provider}: provider is closed`));
      const p = send();
      const forget = () => inflight.delete(p);
      p.then(forget, forget);
      inflight.add(p);
      return p;
    },
    close() {
      closing ??= Promise.allSettled([...inflight]).then(() => {});
      return closing;
    },
  };
}
