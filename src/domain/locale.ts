// BCP 47 language tags: the one home of what a locale is (a recipient profile's, a
// notification's, a template variant's) and of how a tag falls back to less specific ones.
// Canonical form is the runtime's Intl.getCanonicalLocales ("pt-br" → "pt-BR", "iw" → "he"),
// so two spellings of one locale are one string wherever Herald stores or compares them.

/** A tag is at most this long; the longest real ones are about 35 characters. This only bounds work on junk. */
export const localeMaxChars = 64;

// Intl accepts some odd forms (a lone "x-private"); a tag starts with a 2-3 or 4-8 letter language.
const tagShape = /^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$/;

/** `tag` in canonical form, or undefined when it is not a well-formed BCP 47 language tag. */
export function canonicalLocale(tag: string): string | undefined {
  if (tag.length > localeMaxChars || !tagShape.test(tag)) return undefined;
  try {
    return Intl.getCanonicalLocales(tag)[0];
  } catch {
    return undefined;
  }
}

/** The rule a malformed tag breaks, as INVALID_ARGUMENT says it. */
export const localeRule = "must be a BCP 47 language tag like de-CH";

/** The primary language subtag, lower case: "pt" for "pt-BR". */
export function languageOf(locale: string): string {
  const dash = locale.indexOf("-");
  return (dash === -1 ? locale : locale.slice(0, dash)).toLowerCase();
}

/**
 * The tags BCP 47 lookup (RFC 4647 section 3.4) tries for `locale`, most specific first: the
 * tag itself, then with its last subtag removed, one at a time, dropping a singleton (the
 * "u" of "-u-co") left at the end: "zh-Hant-TW" → ["zh-Hant-TW", "zh-Hant", "zh"].
 * Empty for "".
 */
export function lookupChain(locale: string): string[] {
  const chain: string[] = [];
  let tag = locale;
  while (tag !== "") {
    chain.push(tag);
    let cut = tag.lastIndexOf("-");
    if (cut === -1) break;
    // A singleton introduces an extension or private use: it means nothing on its own.
    if (cut >= 2 && tag[cut - 2] === "-") cut -= 2;
    tag = tag.slice(0, cut);
  }
  return chain;
}
