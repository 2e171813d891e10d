import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { TemplateSchema } from "../../gen/herald/v1/template_pb.js";
import { canonicalLocale, languageOf, lookupChain } from "../../src/domain/locale.js";
import { chooseContent, localeCandidates } from "../../src/templates/locale-variant.js";

// BCP 47 tags (domain/locale.ts) and the choice of a template's content by locale and channel
// (templates/locale-variant.ts), the rule both accept and delivery use.

describe("canonicalLocale", () => {
  it.each([
    ["de-ch", "de-CH"],
    ["EN-us", "en-US"],
    ["pt-br", "pt-BR"],
    ["zh-hant-tw", "zh-Hant-TW"],
    ["iw", "he"], // a deprecated code becomes its replacement
    ["de-DE-u-co-phonebk", "de-DE-u-co-phonebk"],
  ])("canonicalizes %s to %s", (tag, canonical) => {
    expect(canonicalLocale(tag)).toBe(canonical);
  });

  it.each(["", "english please", "de_AT", "x-private", "1de", "de-", "de--AT", "de-abcdefghi", "d".repeat(65)])("refuses %j", (tag) => {
    expect(canonicalLocale(tag)).toBeUndefined();
  });
});

describe("lookupChain (RFC 4647 lookup)", () => {
  it.each<[string, string[]]>([
    ["de-AT", ["de-AT", "de"]],
    ["pt-BR", ["pt-BR", "pt"]],
    ["zh-Hant-TW", ["zh-Hant-TW", "zh-Hant", "zh"]],
    ["de", ["de"]],
    // A singleton left at the end goes with the subtag before it.
    ["de-DE-u-co-phonebk", ["de-DE-u-co-phonebk", "de-DE-u-co", "de-DE", "de"]],
    ["en-x-pirate", ["en-x-pirate", "en"]],
    ["", []],
  ])("%s → %j", (tag, chain) => {
    expect(lookupChain(tag)).toEqual(chain);
  });

  it("languageOf is the primary subtag, lower case", () => {
    expect([languageOf("pt-BR"), languageOf("DE"), languageOf("zh-Hant-TW")]).toEqual(["pt", "de", "zh"]);
  });
});

type TemplateInit = Omit<MessageInitShape<typeof TemplateSchema>, "$typeName">;
const template = (init: TemplateInit) => create(TemplateSchema, { templateId: "t", version: 1, ...init });
const text = (t: string) => ({ text: t });

describe("localeCandidates", () => {
  const variants = template({
    locales: [
      { locale: "pt-BR", content: text("br") },
      { locale: "zh-Hant", content: text("hant") },
      { locale: "pt", content: text("pt") },
      { locale: "pt-AO", content: text("ao") },
      { locale: "zh", content: text("zh") },
      { locale: "de", content: text("de") },
    ],
  }).locales;
  const tags = (locale: string) => localeCandidates(variants, locale).map((v) => v.locale);

  it.each<[string, string[]]>([
    // Exact, then less specific, then the rest of the language in the template's order.
    ["pt-BR", ["pt-BR", "pt", "pt-AO"]],
    ["pt-PT", ["pt", "pt-BR", "pt-AO"]],
    ["pt", ["pt", "pt-BR", "pt-AO"]],
    ["zh-Hant-TW", ["zh-Hant", "zh"]],
    ["zh-TW", ["zh", "zh-Hant"]],
    ["de-AT", ["de"]],
    ["DE-at", ["de"]],
    ["fr", []],
    ["", []],
  ])("%s → %j", (locale, want) => {
    expect(tags(locale)).toEqual(want);
  });
});

describe("chooseContent: locale first, then channel, then the default", () => {
  const t = template({
    content: text("default"),
    channelOverrides: [{ channel: Channel.SMS, content: text("default sms") }],
    requiredVariables: ["name"],
    locales: [
      { locale: "de", content: text("de"), requiredVariables: ["code", "name"] },
      { locale: "pt-BR", content: text("br"), channelOverrides: [{ channel: Channel.SMS, content: text("br sms") }], requiredVariables: ["nome"] },
      // An SMS text only: French email falls back to the default.
      { locale: "fr", channelOverrides: [{ channel: Channel.SMS, content: text("fr sms") }], requiredVariables: ["prenom"] },
    ],
  });
  const choose = (channel: Channel, locale: string) => {
    const c = chooseContent(t, channel, locale);
    return c && [c.content.text, c.variant?.locale ?? "default", c.requiredVariables];
  };

  it.each<[string, Channel, string, [string, string, string[]]]>([
    ["exact", Channel.EMAIL, "pt-BR", ["br", "pt-BR", ["nome"]]],
    ["less specific", Channel.EMAIL, "de-AT", ["de", "de", ["code", "name"]]],
    ["another variant of the language", Channel.EMAIL, "pt-PT", ["br", "pt-BR", ["nome"]]],
    ["no variant of the language", Channel.EMAIL, "es", ["default", "default", ["name"]]],
    ["no locale", Channel.EMAIL, "", ["default", "default", ["name"]]],
    ["a variant's channel override over its content", Channel.SMS, "pt-BR", ["br sms", "pt-BR", ["nome"]]],
    ["the language over the default's channel override", Channel.SMS, "de", ["de", "de", ["code", "name"]]],
    ["the default's override with no variant", Channel.SMS, "es", ["default sms", "default", ["name"]]],
    ["a variant with only an override for this channel", Channel.SMS, "fr-CA", ["fr sms", "fr", ["prenom"]]],
    ["the default for a channel a variant does not cover", Channel.EMAIL, "fr", ["default", "default", ["name"]]],
  ])("%s", (_name, channel, locale, want) => {
    expect(choose(channel, locale)).toEqual(want);
  });

  it("is undefined when no candidate has content for the channel", () => {
    const smsOnly = template({ channelOverrides: [{ channel: Channel.SMS, content: text("x") }], locales: [{ locale: "de", channelOverrides: [{ channel: Channel.SMS, content: text("y") }] }] });
    expect(chooseContent(smsOnly, Channel.EMAIL, "de")).toBeUndefined();
    expect(chooseContent(smsOnly, Channel.SMS, "de")?.content.text).toBe("y");
  });
});
