import { ConfigError, type Env } from "./config-env.js";
import { publicUrlOf } from "./config-receipts.js";

// One-click unsubscribe links (RFC 8058; README "One-click unsubscribe"). They point at the API's
// HTTP listener as the world reaches it: the same HERALD_PUBLIC_URL providers call back on.

export interface UnsubscribeConfig {
  /**
   * `${HERALD_PUBLIC_URL}/unsubscribe`, the base of every link; undefined: emails carry no
   * List-Unsubscribe header (the workers say so once at start).
   */
  linkBase?: string;
  /**
   * HERALD_UNSUBSCRIBE_MAILTO: an address also offered as `mailto:` (subject "unsubscribe <token>"),
   * for mail clients that do not do one-click. Herald reads no mailbox: whatever reads this one
   * POSTs the token to the link. Only alongside the link.
   */
  mailto?: string;
}

// An addr-spec plain enough to go into a mailto: URI unescaped (no '?', '&', '%', '<', '>', space).
const MAILTO = /^[A-Za-z0-9.!#$'*+/=^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function loadUnsubscribeConfig(env: Env): UnsubscribeConfig {
  const publicUrl = publicUrlOf(env);
  const mailto = env.HERALD_UNSUBSCRIBE_MAILTO?.trim() || undefined;
  if (mailto !== undefined && !MAILTO.test(mailto)) throw new ConfigError(`HERALD_UNSUBSCRIBE_MAILTO: expected a plain email address such as unsubscribe@example.com, got "${mailto}"`);
  if (!publicUrl) return {};
  return { linkBase: `${publicUrl}/unsubscribe`, ...(mailto ? { mailto } : {}) };
}
