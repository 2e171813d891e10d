import type { RecipientProfile } from "../../gen/herald/v1/recipient_pb.js";
import type { EgressPolicy } from "./egress.js";
import { invalidArgument, strictEgress, validateAddressValue, validateDataMap, validateLocale, validateUserId } from "./validate.js";
import { validateTimeZone } from "./when.js";

// A recipient profile (PutRecipient) is checked as strictly as Create checks one recipient: the
// same rule per address kind (email, E.164, device token, webhook URL with the egress policy),
// plus its own: distinct push tokens, an IANA time zone, a BCP 47 locale, bounded data.

export const profileLimits = {
  pushTokensMax: 10,
  /** content.data's per-entry rules apply too; this bounds the whole. */
  dataMaxBytes: 64 * 1024,
} as const;

/** The checked profile's fields (the contract's, without its output-only times), its locale in canonical form ("de-ch" → "de-CH"). */
export type ValidProfile = Omit<RecipientProfile, "$typeName" | "$unknown" | "createTime" | "updateTime">;

/** Throws INVALID_ARGUMENT naming the field and rule; returns the profile as it is to be stored. */
export function validateProfile(p: RecipientProfile | undefined, path = "recipient", egress: EgressPolicy = strictEgress): ValidProfile {
  if (!p) throw invalidArgument(path, "is required");
  validateUserId(p.userId, `${path}.user_id`);
  if (p.email !== "") validateAddressValue("email", p.email, `${path}.email`, undefined);
  if (p.phone !== "") validateAddressValue("phone", p.phone, `${path}.phone`, undefined);
  if (p.pushTokens.length > profileLimits.pushTokensMax) {
    throw invalidArgument(`${path}.push_tokens`, `must have at most ${profileLimits.pushTokensMax} tokens`);
  }
  const seen = new Set<string>();
  p.pushTokens.forEach((token, i) => {
    const at = `${path}.push_tokens[${i}]`;
    validateAddressValue("deviceToken", token, at, undefined);
    if (seen.has(token)) throw invalidArgument(at, "repeats an earlier token");
    seen.add(token);
  });
  if (p.webhookUrl !== "") validateAddressValue("webhookUrl", p.webhookUrl, `${path}.webhook_url`, egress);
  if (p.timeZone !== "") validateTimeZone(p.timeZone, `${path}.time_zone`);
  const locale = p.locale === "" ? "" : validateLocale(p.locale, `${path}.locale`);
  validateDataMap(p.data, `${path}.data`);
  let bytes = 0;
  for (const [k, v] of Object.entries(p.data)) bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  if (bytes > profileLimits.dataMaxBytes) throw invalidArgument(`${path}.data`, `must be at most ${profileLimits.dataMaxBytes} bytes in all`);
  return {
    userId: p.userId,
    email: p.email,
    phone: p.phone,
    pushTokens: [...p.pushTokens],
    webhookUrl: p.webhookUrl,
    timeZone: p.timeZone,
    locale,
    data: { ...p.data },
  };
}
