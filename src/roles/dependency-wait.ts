import pg from "pg";
import { systemClock, type Clock } from "../clock.js";
import { UnavailableError, type Dependency } from "../errors.js";
import type { Logger } from "../log.js";
import { backoffMs, type BackoffOptions } from "../loop/backoff.js";
import { createOutageLog, type OutageLog } from "../loop/outage.js";
import { sleep } from "../loop/sleep.js";
import { isUnavailable as isDatabaseUnavailable } from "../store/errors.js";

// A role starts whatever is down: each step that needs PostgreSQL or Kafka (create the database,
// migrate, create topics, join a consumer group) is tried until the dependency answers, with
// backoff, logging "waiting for <dependency>" once when it is missing and once when it is back.
// A supervisor sees the process alive (/healthz) and not ready (/readyz) meanwhile, instead of
// a crash loop. Only an explicit refusal ends the wait: PostgreSQL rejecting the credentials,
// a permission or a migration is a configuration error that waiting cannot fix.

/** Thrown by a wait that shutdown ended: not a failure, the process is stopping. */
export class StartAborted extends Error {
  override name = "StartAborted";
}

export interface DependencyWaitOptions {
  log: Logger;
  /** Ends every wait at once (SIGTERM while a dependency is down). */
  signal: AbortSignal;
  /** @defaultValue 200 ms growing to 5 s, full jitter */
  backoff?: BackoffOptions;
  clock?: Clock;
  /** For backoffMs; tests pin it. @defaultValue Math.random */
  random?: () => number;
}

export type WaitForDependency = <T>(dependency: Dependency, attempt: () => Promise<T>) => Promise<T>;

/**
 * Returns `waitFor(dependency, attempt)`: runs `attempt` until it resolves. A failure that an
 * error attributes to another dependency (an UnavailableError says which) is logged under that
 * one. Rejects with StartAborted when `signal` aborts, without waiting for the attempt in flight
 * (a connect to a blackholed host can take seconds), and with the error itself when it is a
 * refusal (see above).
 */
export function createDependencyWait(opts: DependencyWaitOptions): WaitForDependency {
  const { log, signal, backoff = { baseMs: 200, capMs: 5000 }, clock = systemClock, random = Math.random } = opts;
  // One per dependency and process: two steps waiting for Kafka log one outage, not two.
  const outages = new Map<Dependency, OutageLog>();
  const outageOf = (dependency: Dependency) => {
    let outage = outages.get(dependency);
    if (!outage) {
      outage = createOutageLog(log.child({ dependency }), { down: `waiting for ${dependency}`, up: `${dependency} is back` }, clock);
      outages.set(dependency, outage);
    }
    return outage;
  };

  return async (dependency, attempt) => {
    // Every dependency this step waited for: each of those outages ends when the step succeeds.
    const waitedFor = new Set<Dependency>();
    for (;;) {
      if (signal.aborted) throw new StartAborted("shutdown began while starting");
      let result: { value: Awaited<ReturnType<typeof attempt>> } | undefined;
      let failure: unknown;
      try {
        result = { value: await untilAborted(attempt(), signal) };
      } catch (err) {
        failure = err;
      }
      if (signal.aborted) throw new StartAborted("shutdown began while starting");
      if (result) {
        for (const d of waitedFor) outageOf(d).succeeded();
        return result.value;
      }
      if (isRefusal(failure)) throw failure;
      const blamed = failure instanceof UnavailableError ? failure.dependency : dependency;
      waitedFor.add(blamed);
      const failures = outageOf(blamed).failed(failure);
      await sleep(backoffMs(failures, backoff, random), signal);
    }
  };
}

/**
 * PostgreSQL answered, and not with "not now" (57P03 starting up, class 53 out of connections...):
 * bad credentials (28P01), no permission to create the database (42501), a migration that fails.
 * Kafka's failures all wait: kafkajs reports an unreachable broker, one still electing leaders
 * and one refusing the request alike as "retries exceeded", and a refusal shows in the one log line.
 */
function isRefusal(err: unknown): boolean {
  return err instanceof pg.DatabaseError && !isDatabaseUnavailable(err);
}

async function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => {}); // may settle after we stopped listening
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new StartAborted("shutdown began while starting"));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Something started once (a consumer group member): a start that failed leaves it unusable. */
export interface Startable {
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Waits until a fresh `create()` starts: each attempt builds a new one and closes the one whose
 * start failed (kafkajs cannot run a consumer again once its start failed half-way).
 */
export function startWhenReachable<T extends Startable>(waitFor: WaitForDependency, dependency: Dependency, create: () => T): Promise<T> {
  return waitFor(dependency, async () => {
    const started = create();
    try {
      await started.start();
      return started;
    } catch (err) {
      await started.close().catch(() => {});
      throw err;
    }
  });
}
