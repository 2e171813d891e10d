import type { Logger } from "../log.js";

/** Something to stop on shutdown, in order. */
export interface Closer {
  name: string;
  close(): Promise<void> | void;
}

/**
 * Runs closers in order, each guarded: one failing or hanging step does not
 * stop the ones after it from running. Idempotent.
 */
export function createShutdown(log: Logger, stepTimeoutMs = 15_000) {
  const closers: Closer[] = [];
  let done: Promise<void> | undefined;
  return {
    /** Registers a closer; shutdown runs them in registration order. */
    add(name: string, close: () => Promise<void> | void): void {
      closers.push({ name, close });
    },
    run(): Promise<void> {
      done ??= (async () => {
        for (const c of closers) {
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              Promise.resolve().then(() => c.close()),
              new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`timed out after ${stepTimeoutMs} ms`)), stepTimeoutMs);
              }),
            ]);
            log.debug({ step: c.name }, "closed");
          } catch (err) {
            log.error({ err, step: c.name }, "shutdown step failed");
          } finally {
            clearTimeout(timer);
          }
        }
      })();
      return done;
    },
  };
}

export type Shutdown = ReturnType<typeof createShutdown>;
