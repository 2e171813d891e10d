import type { Logger } from "../log.js";
import { createOutageLog } from "../loop/outage.js";
import { sleep } from "../loop/sleep.js";
import type { DeliveryStore } from "../store/deliveries.js";

// A claim's lease is what another worker waits out before it takes the notification over and
// sends it again. A fixed lease has to outlast the slowest send (a queue for a send slot, the
// rate limit, a provider at its timeout), so a dead worker's claims held their recipients for
// that long too. Renewing the lease of every live claim instead lets it be short: it lapses a
// lease after the worker's last renewal, which is soon after it died, however long sends take.
// One UPDATE per interval renews every claim this process holds.

export interface HeldClaim {
  id: string;
  attempt: number;
}

export interface LeaseKeeper {
  /** Renews the claim's lease until the returned function is called (idempotent). */
  hold(claim: HeldClaim): () => void;
  /** Claims held right now. */
  readonly held: number;
  /** Stops renewing; a renewal in flight is awaited. Idempotent. */
  close(): Promise<void>;
}

export interface LeaseKeeperDeps {
  store: Pick<DeliveryStore, "renew">;
  /** Time between renewals: a fraction of the lease, so a failed renewal or two still leaves it alive. */
  intervalMs: number;
  log: Logger;
}

export function createLeaseKeeper(deps: LeaseKeeperDeps): LeaseKeeper {
  const held = new Map<object, HeldClaim>();
  const stop = new AbortController();
  const outage = createOutageLog(deps.log, {
    down: "cannot renew send leases; other workers may re-send these claims once their leases end",
    up: "renewing send leases again",
  });

  async function loop(): Promise<void> {
    while (await sleep(deps.intervalMs, stop.signal)) {
      if (held.size === 0) continue;
      try {
        await deps.store.renew([...held.values()]);
        outage.succeeded();
      } catch (err) {
        // The database is away: the leases may lapse, which costs at most a re-send under the
        // same idempotency key, and only if the partition moves meanwhile. Never fatal.
        outage.failed(err);
      }
    }
  }
  const running = loop();

  return {
    hold(claim) {
      const token = {};
      held.set(token, { id: claim.id, attempt: claim.attempt });
      return () => void held.delete(token);
    },
    get held() {
      return held.size;
    },
    async close() {
      stop.abort();
      await running;
    },
  };
}
