import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { ChannelContent, LocaleContent, Template, TemplateContent } from "../../gen/herald/v1/template_pb.js";
import { languageOf, lookupChain } from "../domain/locale.js";

// Which content of a template version a notification renders, from its channel and locale
// (the rule is written out on Template.locales in proto/herald/v1/template.proto). The
// accept-time check and the workers' renderer both call chooseContent, and a version never
// changes, so the content checked at accept is the content rendered at delivery.

/** What a notification renders: one content, and whose it is. */
export interface ContentChoice {
  content: TemplateContent;
  /** The locale variant it belongs to; undefined for the template's default. */
  variant: LocaleContent | undefined;
  /** The variables the notification must supply: the variant's, or the default's. */
  requiredVariables: readonly string[];
}

/**
 * The locale variants `locale` may render, best first: exact, then each less specific tag
 * (RFC 4647 lookup), then every other variant of the same language in the template's order.
 * Tags compare case-insensitively (both sides are stored canonical; this costs nothing).
 */
export function localeCandidates(variants: readonly LocaleContent[], locale: string): LocaleContent[] {
  if (locale === "" || variants.length === 0) return [];
  const byTag = new Map(variants.map((v) => [v.locale.toLowerCase(), v]));
  const out: LocaleContent[] = [];
  for (const tag of lookupChain(locale.toLowerCase())) {
    const v = byTag.get(tag);
    if (v) out.push(v);
  }
  const language = languageOf(locale);
  for (const v of variants) if (languageOf(v.locale) === language && !out.includes(v)) out.push(v);
  return out;
}

/**
 * The content a notification on `channel` with `locale` ("" for none) renders: from the first
 * candidate (localeCandidates, then the default) that has content for the channel, its override
 * for the channel, else its own content. Undefined when no candidate has any.
 */
export function chooseContent(template: Template, channel: Channel, locale: string): ContentChoice | undefined {
  for (const variant of localeCandidates(template.locales, locale)) {
    const content = contentOf(variant.content, variant.channelOverrides, channel);
    if (content) return { content, variant, requiredVariables: variant.requiredVariables };
  }
  const content = contentOf(template.content, template.channelOverrides, channel);
  return content && { content, variant: undefined, requiredVariables: template.requiredVariables };
}

function contentOf(content: TemplateContent | undefined, overrides: readonly ChannelContent[], channel: Channel): TemplateContent | undefined {
  const chosen = overrides.find((o) => o.channel === channel)?.content ?? content;
  return chosen && (chosen.subject !== "" || chosen.text !== "" || chosen.html !== "") ? chosen : undefined;
}
