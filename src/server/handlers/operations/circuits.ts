import { createOutageLog } from "../../../loop/outage.js";
import type { Logger } from "../../../log.js";
import { redisWithin } from "../../../redis.js";

// The operations view's circuit breakers: each provider of each channel that lists several, as
// the workers share them in Redis (read by `read`, which the server role binds to the breakers'
// own store, src/workers/providers/circuit/shared.ts). Like the lag, bounded: an overview must
// answer while Redis does not, and then says the breakers are unknown. (While Redis is down each
// worker runs its own breakers in memory; the gauge herald_provider_circuit_state shows those.)

/** How long an overview waits for Redis's answer. */
export const CIRCUITS_TIMEOUT_MS = 1000;

/** A breaker as read, not moved: its state and, when open, how long until a probe may go. */
export interface CircuitReading {
  state: "closed" | "half_open" | "open";
  retryInMs: number;
}

export interface CircuitReader {
  /** Per channel with failover, its providers' breakers in order; no `reading`: Redis did not answer. */
  read(): Promise<Map<string, Array<{ provider: string; reading?: CircuitReading }>>>;
}

export function createCircuitReader(deps: {
  lists: ReadonlyArray<{ channel: string; providers: readonly string[] }>;
  /** The breakers of `breakers`, in that order, in one round trip. */
  read: (breakers: ReadonlyArray<{ channel: string; provider: string }>) => Promise<CircuitReading[]>;
  log: Logger;
  timeoutMs?: number;
}): CircuitReader {
  const { lists, timeoutMs = CIRCUITS_TIMEOUT_MS } = deps;
  const breakers = lists.flatMap(({ channel, providers }) => providers.map((provider) => ({ channel, provider })));
  const outage = createOutageLog(deps.log, { down: "circuit breakers unreadable for the operations overview", up: "circuit breakers readable again" });

  async function readings(): Promise<CircuitReading[] | undefined> {
    if (breakers.length === 0) return [];
    try {
      const rows = await redisWithin(deps.read(breakers), timeoutMs);
      outage.succeeded();
      return rows;
    } catch (err) {
      outage.failed(err);
      return undefined;
    }
  }

  return {
    async read() {
      const rows = await readings();
      const out = new Map<string, Array<{ provider: string; reading?: CircuitReading }>>();
      breakers.forEach(({ channel, provider }, i) => {
        const list = out.get(channel) ?? [];
        list.push({ provider, ...(rows?.[i] ? { reading: rows[i] } : {}) });
        out.set(channel, list);
      });
      return out;
    },
  };
}
