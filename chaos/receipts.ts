import type { TwilioStandIn } from "../test/support/stand-ins/twilio.js";
import type { Load } from "./load.js";

// The provider's side of the story: every request the Twilio stand-in received, with the
// notification it names (Herald sends the notification id as I-Twilio-Idempotency-Token) and
// when the client was told that notification was accepted.

export interface Receipt {
  at: number;
  token: string | undefined;
  /** When the client was answered OK for the notification named by the token (undefined: not by this load). */
  acceptedAt: number | undefined;
}

export function receiptsOf(standIn: TwilioStandIn, load: Load): Receipt[] {
  return standIn.requests.map((r) => {
    const token = r.headers["i-twilio-idempotency-token"];
    return { at: r.receivedAt.getTime(), token, acceptedAt: token ? load.byId(token)?.acceptedAt : undefined };
  }).sort((a, b) => a.at - b.at);
}

/**
 * The first receipt at or after `from` of a notification accepted at or after `acceptedSince`:
 * proof that the pipeline moved new work end to end after a fault, not just finished what it held.
 */
export function firstFreshReceipt(receipts: readonly Receipt[], from: number, acceptedSince: number): Receipt | undefined {
  return receipts.find((r) => r.at >= from && r.acceptedAt !== undefined && r.acceptedAt >= acceptedSince);
}

/** The longest time in [from, to] without a receipt (from the window's start to the first, between receipts, the last to its end). */
export function longestGap(receipts: readonly Receipt[], from: number, to: number): { ms: number; at: number } {
  let last = from;
  let best = { ms: 0, at: from };
  for (const r of receipts) {
    if (r.at < from) continue;
    const t = Math.min(r.at, to);
    if (t - last > best.ms) best = { ms: t - last, at: last };
    last = t;
    if (r.at >= to) break;
  }
  if (to - last > best.ms) best = { ms: to - last, at: last };
  return best;
}
