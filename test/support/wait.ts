import { inspect } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";

// The one way tests wait: poll a probe until it yields a value, like kafkajs's testHelpers
// (waitForMessages, waitForConsumerToJoinGroup). Deadlines are generous because the suite
// shares a 2-core machine with other work; a deadline only bounds a hang, it never measures
// speed, so a slow machine makes a test slower, not red.

export interface WaitOptions {
  /** Give up after this long. @defaultValue 30_000 */
  timeoutMs?: number;
  /** Pause between probes. @defaultValue 25 */
  everyMs?: number;
}

/** What a probe may return: anything but `undefined` or `false` ends the wait with that value. */
export type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

/**
 * Resolves with the probe's first value that is neither `undefined` nor `false`. A probe that
 * throws is retried (the state it reads may not exist yet); on timeout the error names `what`
 * and the last value or error the probe gave, so a red test says where things stood.
 */
export async function waitFor<T>(what: string, probe: Probe<T>, opts: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 30_000, everyMs = 25 } = opts;
  const deadline = Date.now() + timeoutMs;
  let last: { value: unknown } | { error: unknown } = { value: undefined };
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (Date.now() >= deadline) {
      const seen = "error" in last ? `last error: ${describe(last.error)}` : `last value: ${inspect(last.value, { depth: 3, breakLength: Infinity })}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${seen})`, "error" in last ? { cause: last.error } : undefined);
    }
    await sleep(everyMs);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : inspect(err);
}

/** Runs `call` until it does not fail UNAVAILABLE (at most `attempts` times), as a client retrying under one idempotency key. */
export async function retryUnavailable<T>(call: () => Promise<T>, attempts = 10): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= attempts || ConnectError.from(err).code !== Code.Unavailable) throw err;
      await sleep(100 * attempt);
    }
  }
}
