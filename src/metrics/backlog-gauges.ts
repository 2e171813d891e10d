import type { Registry } from "prom-client";
import { systemClock, type Clock } from "../clock.js";
import type { Logger } from "../log.js";
import { createOutageLog } from "../loop/outage.js";
import { gaugeIn } from "./instruments.js";

// What waits inside Herald, as gauges read on scrape: the outbox backlog (relay role), the due
// rows and the open dead letters (scheduler role). One backlog query (src/store/backlog.ts, a
// handful of capped index scans) serves every gauge of a scrape, and a second scrape within
// `maxAgeMs` reuses its answer. The wait is bounded: a database that does not answer leaves the
// gauges at their last values (logged once per outage) rather than holding the scrape.

/** What the backlog query answers (the store's `Backlog`). */
export interface BacklogValues {
  outboxPending: number;
  outboxOldestAgeSeconds: number;
  dueUnreleased: number;
  dueOldestAgeSeconds: number;
  deadLettersOpen: number;
}

/** Which role's gauges: the relay's outbox, or the scheduler's due rows and dead letters. */
export type BacklogPart = "outbox" | "scheduler";

export interface BacklogGaugeDeps {
  /** One backlog read, e.g. `() => readBacklog(pool)`. */
  read: () => Promise<BacklogValues>;
  log: Logger;
  /** @defaultValue systemClock */
  clock?: Clock;
  /** A read younger than this answers the scrape. @defaultValue 1000 */
  maxAgeMs?: number;
  /** Longest a scrape waits for the read; then it answers the last values. @defaultValue 2000 */
  timeoutMs?: number;
}

const gauges: Record<BacklogPart, Array<{ name: string; help: string; pick: (b: BacklogValues) => number }>> = {
  outbox: [
    { name: "herald_outbox_pending", help: "Outbox rows not yet published to Kafka (capped at 1,000,000).", pick: (b) => b.outboxPending },
    { name: "herald_outbox_oldest_age_seconds", help: "Age of the oldest unpublished outbox row; 0 when none waits.", pick: (b) => b.outboxOldestAgeSeconds },
  ],
  scheduler: [
    { name: "herald_scheduler_due", help: "Notifications due and not yet released (SCHEDULED + RETRYING).", pick: (b) => b.dueUnreleased },
    { name: "herald_scheduler_due_oldest_age_seconds", help: "How long the oldest due, unreleased notification has waited; 0 when none.", pick: (b) => b.dueOldestAgeSeconds },
    { name: "herald_dead_letters", help: "Open dead letters (not redriven), every tenant.", pick: (b) => b.deadLettersOpen },
  ],
};

interface BacklogSampler {
  /** The latest values (read now, or less than maxAgeMs ago); undefined before any read succeeded. */
  sample(): Promise<BacklogValues | undefined>;
}

// One sampler per registry: in `herald dev` the relay and the scheduler register their gauges in
// one registry, and their scrape must cost one query, not one per role. Keyed by the registry the
// caller passes in, so separate processes' (and tests') registries never share one.
const samplers = new WeakMap<Registry, BacklogSampler>();

/** Registers `part`'s backlog gauges in `registry` (once: a second call for the same part does nothing). */
export function registerBacklogGauges(registry: Registry, part: BacklogPart, deps: BacklogGaugeDeps): void {
  let sampler = samplers.get(registry);
  if (!sampler) samplers.set(registry, (sampler = createBacklogSampler(deps)));
  const shared = sampler;
  for (const { name, help, pick } of gauges[part]) {
    gaugeIn(registry, {
      name,
      help,
      async collect() {
        const backlog = await shared.sample();
        if (backlog) this.set(pick(backlog));
      },
    });
  }
}

function createBacklogSampler(deps: BacklogGaugeDeps): BacklogSampler {
  const { read, clock = systemClock, maxAgeMs = 1000, timeoutMs = 2000 } = deps;
  const outage = createOutageLog(
    deps.log,
    { down: "backlog gauges cannot read the database; they keep their last values", up: "backlog gauges read the database again" },
    clock,
  );
  let last: BacklogValues | undefined;
  let readAt = Number.NEGATIVE_INFINITY;
  let reading: Promise<void> | undefined;

  // Concurrent scrapes (and the gauges of one scrape) join the read in flight.
  function refresh(): Promise<void> {
    reading ??= read()
      .then(
        (values) => {
          last = values;
          readAt = clock.now();
          outage.succeeded();
        },
        (err: unknown) => void outage.failed(err),
      )
      .finally(() => (reading = undefined));
    return reading;
  }

  return {
    async sample() {
      if (clock.now() - readAt < maxAgeMs) return last;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeoutMs, true)));
      const late = await Promise.race([refresh().then(() => false), timedOut]);
      clearTimeout(timer);
      // The read goes on; when it answers, the next scrape has its values.
      if (late) outage.failed(new Error(`backlog read did not answer within ${timeoutMs} ms`));
      return last;
    },
  };
}
