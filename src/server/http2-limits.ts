import type { Logger } from "../log.js";
import { systemClock, type Clock } from "../clock.js";

// What one client connection may do to Node's HTTP/2 server, shared by both listeners.
//
// Node answers the HTTP/2 rapid-reset attack (CVE-2023-44487) in nghttp2: a token bucket per
// session, 1,000 RST_STREAMs at once and 33 a second after. Past it the server sends
// GOAWAY(INTERNAL_ERROR), a Node client destroys the whole session, and every other call on
// that connection fails INTERNAL. Node 20 cannot change the bucket (streamResetBurst and
// streamResetRate came in a later Node), and capping concurrent streams does not shrink a storm:
// a Node client that cancels calls it queued behind the cap still sends HEADERS and then
// RST_STREAM for each (measured). So Herald keeps clients from having reasons to cancel in bulk
// (admission control answers at once instead of letting calls time out in a queue; see
// src/store/group-commit.ts), keeps the bucket for real abuse, and says when a client crossed it:
// Node itself logs nothing.

/** nghttp2's rapid-reset bucket as Node 20 builds it (not configurable there). */
export const RESET_BURST = 1000;
export const RESET_REFILL_PER_SECOND = 33;

/**
 * SETTINGS_MAX_CONCURRENT_STREAMS: a bound on what one connection can hold in memory, set well
 * above what admission lets pile up. A low cap would hide calls from admission control: the
 * client queues them itself, they time out there, and each timeout costs a reset.
 */
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 10_000;

/**
 * Counts the streams each client connection reset, with the same bucket as nghttp2, so the
 * server can say (once per connection, at warn) when a client crossed the limit and lost its
 * connection: Node itself logs nothing, and the client only sees INTERNAL.
 */
export interface ResetWatch {
  /** A stream of the connection `peer` ("address:port") was reset by the client. */
  reset(peer: string): void;
}

interface Bucket {
  tokens: number;
  at: number;
  resets: number;
  warned: boolean;
}

/** Connections remembered at most; past it, those whose bucket has refilled are forgotten. */
const MAX_TRACKED = 10_000;

export function createResetWatch(log: Logger, listener: string, clock: Clock = systemClock): ResetWatch {
  const buckets = new Map<string, Bucket>();
  const refill = (b: Bucket, now: number) => Math.min(RESET_BURST, b.tokens + ((now - b.at) / 1000) * RESET_REFILL_PER_SECOND);

  function forgetRefilled(now: number): void {
    for (const [peer, b] of buckets) if (refill(b, now) >= RESET_BURST) buckets.delete(peer);
  }

  return {
    reset(peer) {
      const now = clock.now();
      let b = buckets.get(peer);
      if (!b) {
        if (buckets.size >= MAX_TRACKED) forgetRefilled(now);
        buckets.set(peer, (b = { tokens: RESET_BURST, at: now, resets: 0, warned: false }));
      }
      b.tokens = refill(b, now);
      b.at = now;
      b.resets++;
      if (b.tokens >= 1) {
        b.tokens--;
        return;
      }
      if (b.warned) return;
      b.warned = true;
      log.warn(
        { listener, peer, resets: b.resets, burst: RESET_BURST, perSecond: RESET_REFILL_PER_SECOND },
        "HTTP/2 client reset streams faster than the rapid-reset limit: Node closes its connection (GOAWAY) and its other calls fail",
      );
    },
  };
}
