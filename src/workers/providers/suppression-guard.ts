import { PermanentError, TransientError } from "../../errors.js";
import { isUnavailable } from "../../store/errors.js";
import type { SuppressionLookups } from "../../store/suppression-lookups.js";
import type { Suppression } from "../../store/suppressions.js";
import { attributeFailure } from "./attribution.js";
import type { Provider, RenderedMessage } from "./provider.js";

// A provider that refuses suppressed addresses (migration 008): before each send it looks the
// recipient up, and a suppressed one fails the notification at once, with the reason, without
// calling the provider (a hard-bounced mailbox or a complaint must not be mailed again; providers
// punish senders who do). Wrapped around whatever provider (or failover list) a worker sends
// through, so no provider needs to know about suppressions.

export interface SuppressionGuardDeps {
  /** The worker's lookups (batched; src/store/suppression-lookups.ts). */
  lookups: SuppressionLookups;
}

const reasonText: Record<Suppression["reason"], string> = {
  hard_bounce: "hard bounce",
  complaint: "complaint",
  manual: "added by an operator",
};

/** The recipient's address, whatever its kind. */
function addressOf(message: RenderedMessage): string | undefined {
  const { address } = message.recipient;
  return address.case === undefined ? undefined : address.value;
}

/** The last_error a suppressed send ends with: why, since when, and how to undo it. */
export function suppressedText(s: Suppression): string {
  const detail = s.detail.trim() === "" ? "" : ` (${s.detail.trim()})`;
  const since = s.createdAt ? ` since ${s.createdAt.toISOString()}` : "";
  return `address suppressed: ${reasonText[s.reason] ?? s.reason}${detail}${since}; remove the suppression to send again`;
}

export function guardSuppressions(provider: Provider, deps: SuppressionGuardDeps): Provider {
  return {
    name: provider.name,
    ...(provider.members ? { members: provider.members } : {}),
    async send(message, signal) {
      const address = addressOf(message);
      if (address !== undefined) {
        let suppression: Suppression | undefined;
        try {
          suppression = await deps.lookups.find({ tenant: message.tenant, channel: message.channel, address });
        } catch (err) {
          // Not knowing is not a verdict: whatever kept the lookup from answering, try again later
          // rather than fail a notification to an address that may well be fine.
          const why = isUnavailable(err) ? "database unavailable" : "the lookup failed";
          // No provider was called: the failure is none of theirs (attributed to "").
          throw attributeFailure(new TransientError(`could not check the suppression list: ${why}`, { cause: err }), "");
        }
        if (suppression) throw attributeFailure(new PermanentError(suppressedText(suppression)), "");
      }
      return provider.send(message, signal);
    },
    close: () => provider.close(),
  };
}
