import type { Redis } from "ioredis";
import { systemClock, type Clock } from "../../../clock.js";
import type { BreakerConfig } from "../../../config-delivery.js";
import type { Logger } from "../../../log.js";
import { redisWithin } from "../../../redis.js";
import { createOutageLog } from "../../../loop/outage.js";
import { createCircuitMetrics, type CircuitMetrics } from "../../../metrics/circuit.js";
import type { Registry } from "../../../metrics/registry.js";
import { circuitKey, createSharedBreakerStore, type SharedBreakerStore } from "./shared.js";
import { admit, circuitStateValue, closedState, record, type Admission, type BreakerState, type CircuitState } from "./state.js";

// The circuit breakers of one deployment: one per channel and provider, shared by every worker
// process through Redis once attached to it. While Redis fails (or does not answer within
// redisTimeoutMs) each process runs the same breakers in memory, so a provider outage during a
// Redis outage still fails over, each process tripping on its own failures; Redis is tried again
// every probeIntervalMs and the shared state resumes when it answers. Logged once each way.

/** One send's admission, to hand back to record(): which store admitted it. */
export interface Ticket extends Admission {
  local: boolean;
}

export interface CircuitBreaker {
  readonly channel: string;
  readonly provider: string;
  admit(): Promise<Ticket>;
  /** How an admitted send ended: ok (accepted, or refused for the message's sake) or a transient failure. */
  record(ticket: Ticket, ok: boolean): Promise<void>;
}

export interface CircuitBoard {
  breaker(channel: string, provider: string): CircuitBreaker;
  /** A send went to `to` because `from`'s breaker was open. */
  failedOver(channel: string, from: string, to: string): void;
  /**
   * Shares the breakers through `redis` and reports them into `registry` from now on. Providers are
   * built (config checked) before the process connects to anything; until attached, the breakers
   * are this process's own.
   */
  attach(shared: { redis: Redis; registry: Registry }): void;
}

export interface CircuitBoardOptions {
  config: BreakerConfig;
  /** Namespaces the Redis keys per deployment, like topics (the topic prefix). */
  keyPrefix: string;
  log: Logger;
  /** The in-memory breakers' clock. @defaultValue systemClock */
  clock?: Clock;
  /** @defaultValue 500 */
  redisTimeoutMs?: number;
  /** While on the local breakers, how often Redis is tried again. @defaultValue 1000 */
  probeIntervalMs?: number;
}

export function createCircuitBoard(opts: CircuitBoardOptions): CircuitBoard {
  const { config, log, clock = systemClock, redisTimeoutMs = 500, probeIntervalMs = 1000 } = opts;
  let shared: SharedBreakerStore | undefined;
  let metrics: CircuitMetrics | undefined;
  const local = new Map<string, BreakerState>();
  const outage = createOutageLog(log.child({ component: "circuit-breakers" }), {
    down: "circuit breakers cannot reach redis; each process keeps its own",
    up: "circuit breakers reached redis again; shared state restored",
  }, clock);
  let nextTryAt = 0;
  let trying = false;

  /** Runs `f` on Redis unless it is known down and not due for another try; undefined: use the local breaker. */
  async function onRedis<T>(f: (store: SharedBreakerStore) => Promise<T>): Promise<T | undefined> {
    if (!shared) return undefined;
    // While Redis is down one call at a time tries it again: a Redis that does not answer must
    // not hold every send for the timeout.
    const retrying = outage.failures > 0;
    if (retrying && (trying || clock.now() < nextTryAt)) return undefined;
    trying = retrying;
    try {
      const result = await redisWithin(f(shared), redisTimeoutMs);
      outage.succeeded();
      return result;
    } catch (err) {
      outage.failed(err);
      nextTryAt = clock.now() + probeIntervalMs;
      return undefined;
    } finally {
      if (retrying) trying = false;
    }
  }

  function localState(key: string): BreakerState {
    let s = local.get(key);
    if (!s) local.set(key, (s = closedState()));
    return s;
  }

  return {
    breaker(channel, provider) {
      const key = circuitKey(opts.keyPrefix, channel, provider);
      const report = (state: CircuitState) => metrics?.state(channel, provider, circuitStateValue[state]);
      return {
        channel,
        provider,
        async admit() {
          const remote = await onRedis((store) => store.admit(key));
          const ticket: Ticket = remote ? { ...remote, local: false } : { ...admit(localState(key), clock.now(), config), local: true };
          report(ticket.state);
          return ticket;
        },
        async record(ticket, ok) {
          // Unchanged by a success while closed: no Redis call on the healthy path's second half.
          if (ok && !ticket.probe && ticket.state === "closed") return;
          const remote = ticket.local ? undefined : await onRedis((store) => store.record(key, ok, ticket.probe));
          report(remote ?? record(localState(key), ok, ticket.probe, clock.now(), config));
        },
      };
    },
    failedOver: (channel, from, to) => metrics?.failover(channel, from, to),
    attach({ redis, registry }) {
      shared = createSharedBreakerStore(redis, config);
      metrics = createCircuitMetrics(registry);
    },
  };
}
