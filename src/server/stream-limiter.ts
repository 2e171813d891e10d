import { Code, ConnectError } from "@connectrpc/connect";

// Caps on concurrent WatchStatus streams: per API key, so one misbehaving client cannot
// take every slot, and per instance, so memory stays bounded whatever the keys.

export interface StreamLimiter {
  /** Takes a slot for `keyId` or throws RESOURCE_EXHAUSTED; call the returned function once to give it back. */
  acquire(keyId: string): () => void;
  /** Streams open now. */
  open(): number;
}

export function createStreamLimiter(limits: { perKey: number; total: number }): StreamLimiter {
  const byKey = new Map<string, number>();
  let total = 0;
  return {
    acquire(keyId) {
      const held = byKey.get(keyId) ?? 0;
      if (held >= limits.perKey) {
        throw new ConnectError(`too many WatchStatus streams for this API key (limit ${limits.perKey}); close one or retry later`, Code.ResourceExhausted);
      }
      if (total >= limits.total) {
        throw new ConnectError(`this server has reached its limit of ${limits.total} WatchStatus streams; retry later or on another instance`, Code.ResourceExhausted);
      }
      byKey.set(keyId, held + 1);
      total++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total--;
        const now = (byKey.get(keyId) ?? 1) - 1;
        if (now === 0) byKey.delete(keyId);
        else byKey.set(keyId, now);
      };
    },
    open: () => total,
  };
}
