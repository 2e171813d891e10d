// A polling loop: call, hand over the answer (or the error), wait, again,
// until stopped. One call at a time, so a slow server is never asked twice at
// once; the wait starts when the answer arrives.

export interface PollOptions<T> {
  call(signal: AbortSignal): Promise<T>;
  onResult(value: T): void;
  onError(err: unknown): void;
  everyMs: number;
  /** Resolves after ms, or early when signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export function startPolling<T>(opts: PollOptions<T>): { stop(): void } {
  const abort = new AbortController();
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        const value = await opts.call(abort.signal);
        if (abort.signal.aborted) return;
        opts.onResult(value);
      } catch (err) {
        if (abort.signal.aborted) return;
        opts.onError(err);
      }
      await opts.sleep(opts.everyMs, abort.signal);
    }
  })();
  return { stop: () => abort.abort() };
}
