import { Channel } from "../../../gen/herald/v1/notification_pb.js";
import type { Clock } from "../../clock.js";
import type { UnsubscribeTokens } from "../../domain/unsubscribe-token.js";
import { PermanentError, TransientError } from "../../errors.js";
import type { BatchedLookups } from "../../store/batched-lookups.js";
import { isUnavailable } from "../../store/errors.js";
import type { CategoryCheck, CategoryKey } from "../../store/unsubscribes.js";
import { attributeFailure } from "./attribution.js";
import type { ListUnsubscribe, Provider, RenderedMessage } from "./provider.js";

// Unsubscribes, applied at send (README "One-click unsubscribe"). For a notification of a
// category (none: transactional, nothing to check, no header), the guard asks the worker's batched
// category checks (store/unsubscribes.ts) two things at once:
//  - has the recipient unsubscribed from it (one-click link or preferences)? Then it is not sent:
//    FAILED with the reason, the provider never called, as for a suppressed address. Notify skips
//    such a channel before anything is created; this is what stops Create'd and Schedule'd mail,
//    and whatever was accepted before the click;
//  - has the recipient opted out of its channel, for the category or for all (or is the category
//    off on the channel by the tenant's default, and they never opted in)? Then it is not sent
//    either: the choice Notify applies at accept, applied again at send, so a notification held
//    by quiet hours or a backlog does not outlive an opt-out made meanwhile;
//  - is it a required category of the tenant? Then it goes out whatever was chosen, and an email
//    of it carries no unsubscribe link (nobody may leave `security`).
// Otherwise an email gets its signed one-click link (List-Unsubscribe, smtp.ts), when a public URL
// is configured. Wrapped around whatever provider a channel has, beside the suppression guard.

export interface UnsubscribeLinks {
  /** `${HERALD_PUBLIC_URL}/unsubscribe`. */
  base: string;
  /** Also offered as `mailto:` (config-unsubscribe.ts). */
  mailto?: string;
  tokens: UnsubscribeTokens;
  clock: Clock;
}

export interface UnsubscribeGuardDeps {
  /** The worker's category checks, batched. */
  checks: BatchedLookups<CategoryKey, CategoryCheck>;
  /** Signs each email's link; absent: emails carry no List-Unsubscribe header. */
  links?: UnsubscribeLinks;
}

/** The last_error a send to an unsubscribed recipient ends with: why, since when, how to undo it. */
export function unsubscribedText(category: string, how: NonNullable<CategoryCheck["unsubscribed"]>): string {
  return how.via === "link"
    ? `recipient unsubscribed from ${category} by its one-click link since ${how.since.toISOString()}; SetPreferences without that unsubscribe subscribes them again`
    : `recipient unsubscribed from ${category} in their preferences; SetPreferences changes that`;
}

/** The headers' values for one email: the link (and mailto) carrying its signed token. */
export function linkFor(links: UnsubscribeLinks, message: RenderedMessage, category: string): ListUnsubscribe {
  const token = links.tokens.sign({
    tenant: message.tenant,
    userId: message.recipient.userId,
    category,
    notificationId: message.notificationId,
    issuedAt: new Date(links.clock.now()),
  });
  return {
    url: `${links.base}/${token}`,
    ...(links.mailto ? { mailto: `mailto:${links.mailto}?subject=unsubscribe%20${token}` } : {}),
  };
}

export function guardUnsubscribes(provider: Provider, deps: UnsubscribeGuardDeps): Provider {
  return {
    name: provider.name,
    ...(provider.members ? { members: provider.members } : {}),
    async send(message, signal) {
      const category = message.category ?? "";
      const userId = message.recipient.userId;
      if (category === "" || userId === "") return provider.send(message, signal);
      let check: CategoryCheck;
      try {
        check = await deps.checks.find({ tenant: message.tenant, userId, category, channel: message.channel });
      } catch (err) {
        // Not knowing is not a verdict either way: try again later, as the suppression guard does.
        const why = isUnavailable(err) ? "database unavailable" : "the lookup failed";
        throw attributeFailure(new TransientError(`could not check the recipient's unsubscribes: ${why}`, { cause: err }), "");
      }
      if (check.required) return provider.send(message, signal);
      if (check.unsubscribed) throw attributeFailure(new PermanentError(unsubscribedText(category, check.unsubscribed)), "");
      if (check.optedOut) throw attributeFailure(new PermanentError(`not sent: ${check.optedOut.detail}; SetPreferences changes that`), "");
      const link = message.channel === Channel.EMAIL && deps.links ? linkFor(deps.links, message, category) : undefined;
      return provider.send(link ? { ...message, listUnsubscribe: link } : message, signal);
    },
    close: () => provider.close(),
  };
}
