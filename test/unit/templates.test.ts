import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { Channel, NotificationSpecSchema, TemplateRefSchema, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import { PutTemplateRequestSchema, TemplateSchema, type Template } from "../../gen/herald/v1/template_pb.js";
import { checkPutTemplate, templateLimits } from "../../src/server/handlers/templates/put.js";
import { createTemplatePin } from "../../src/server/handlers/template-ref.js";
import { UnavailableError } from "../../src/errors.js";
import type { TemplateStore } from "../../src/store/templates.js";
import { createCompilePool } from "../../src/templates/compile-pool.js";
import { createRenderer } from "../../src/templates/notification-renderer.js";
import { createRenderEngine, RenderError, type RenderEngine } from "../../src/templates/render-fields.js";
import { createTemplateCache } from "../../src/templates/template-cache.js";
import { chooseContent } from "../../src/templates/locale-variant.js";

// Templates without a database: what PutTemplate accepts and what it
// requires, how the renderer picks, escapes and caches, and the accept-time
// pin. Stores are fakes passed in.

// The server's compiler: worker threads running the build's compile-worker.js.
const compiler = createCompilePool();
afterAll(() => compiler.close());
type PutInit = Exclude<MessageInitShape<typeof PutTemplateRequestSchema>, { $typeName: string }>;
const check = (init: PutInit) => checkPutTemplate(compiler, create(PutTemplateRequestSchema, { templateId: "welcome", ...init }));
/** The default's required variables. */
const put = (init: PutInit) => check(init).then((c) => c.requiredVariables);

/** The InvalidArgument message `call` rejects with, or a failure. */
async function invalid(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    expect((e as ConnectError).code).toBe(Code.InvalidArgument);
    return (e as ConnectError).rawMessage;
  }
  throw new Error("expected InvalidArgument");
}

describe("PutTemplate: required variables", () => {
  it("are the variables printed outside blocks, by full dotted name, sorted and unique", async () => {
    const required = await put({
      content: {
        subject: "Hi {{name}}",
        text: "{{name}}, {{#if vip}}{{perk}}{{/if}}{{#each items}}{{this}} {{title}}{{/each}}{{#with account}}{{id}}{{/with}} {{user.name}} {{@root.plan}} {{{raw}}} {{@index}} {{this}} {{'literal'}}{{! a {{comment}} }}",
        html: "<p>{{#unless quiet}}{{loud}}{{else}}{{quietText}}{{/unless}} {{lookup user 'name'}}</p>",
      },
    });
    expect(required).toEqual(["name", "plan", "raw", "user.name"]);
  });

  it("are the union over the default content and every override", async () => {
    const required = await put({
      content: { text: "Hi {{name}}" },
      channelOverrides: [{ channel: Channel.SMS, content: { text: "Code {{code}} for {{name}}" } }],
    });
    expect(required).toEqual(["code", "name"]);
  });
});

describe("PutTemplate: validation", () => {
  const text = (t: string): PutInit => ({ content: { text: t } });

  it.each<[string, PutInit, string]>([
    ["a parse error", { content: { html: "<p>{{#if x}}</p>" } }, "content.html: does not compile: Parse error on line 1: unexpected end of template"],
    [
      "a parse error in an override, by index",
      { content: { text: "ok" }, channelOverrides: [{ channel: Channel.EMAIL, content: { text: "e" } }, { channel: Channel.SMS, content: { subject: "{{name}" } }] },
      "channel_overrides[1].content.subject: does not compile: Parse error on line 1: unexpected INVALID",
    ],
    ["mismatched blocks", text("{{#if a}}\n{{/each}}"), "content.text: does not compile: if doesn't match each at line 1, column 4"],
    ["an unknown helper", text("{{upper name}}"), "content.text: does not compile: unknown helper upper (only if, unless, each, with and lookup exist) at line 1, column 1"],
    ["the log helper", text("{{log name}}"), "content.text: does not compile: unknown helper log (only if, unless, each, with and lookup exist) at line 1, column 1"],
    ["a partial", text("a {{> footer}}"), "content.text: does not compile: partials ({{> name}}) are not supported at line 1, column 3"],
    ["a decorator", text('{{#*inline "x"}}y{{/inline}}'), "content.text: does not compile: decorators ({{* name}}) are not supported at line 1, column 1"],
    ["an inline if", text("{{if x}}"), "content.text: does not compile: if needs a block: {{#if ...}}...{{/if}} at line 1, column 3"],
    ["#if without argument", text("{{#if}}x{{/if}}"), "content.text: does not compile: if takes exactly one argument, got 0 at line 1, column 4"],
    ["lookup with one argument", text("{{lookup user}}"), "content.text: does not compile: lookup takes exactly 2 arguments, got 1 at line 1, column 3"],
    ["a variable no key can name", text("{{[first name]}}"), 'content.text: does not compile: variable "first name" can never be supplied: variable names are 1 to 128 characters of [A-Za-z_][A-Za-z0-9_.]* at line 1, column 3'],
    ["no template id", { templateId: "", ...text("x") }, "template_id: is required"],
    ["a bad template id", { templateId: "a b", ...text("x") }, "template_id: must be 1 to 128 characters of [A-Za-z0-9._-]"],
    ["no content at all", {}, "content: set at least one of subject, text or html (or a channel override)"],
    ["an override without channel", { channelOverrides: [{ content: { text: "x" } }] }, "channel_overrides[0].channel: is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK"],
    ["an unknown channel", { channelOverrides: [{ channel: 9 as Channel, content: { text: "x" } }] }, "channel_overrides[0].channel: must be a known channel, got 9"],
    [
      "two overrides for one channel",
      { channelOverrides: [{ channel: Channel.SMS, content: { text: "a" } }, { channel: Channel.PUSH, content: { text: "b" } }, { channel: Channel.SMS, content: { text: "c" } }] },
      "channel_overrides[2].channel: CHANNEL_SMS already has an override at channel_overrides[0]",
    ],
    ["an empty override", { ...text("x"), channelOverrides: [{ channel: Channel.SMS, content: {} }] }, "channel_overrides[0].content: set at least one of subject, text or html"],
    ["html for sms", { channelOverrides: [{ channel: Channel.SMS, content: { html: "<b>x</b>" } }] }, "channel_overrides[0].content.html: only email supports html"],
    ["a long subject", { content: { subject: "s".repeat(999) } }, "content.subject: must be at most 998 characters"],
    ["a large field", text("x".repeat(256 * 1024 + 1)), "content.text: must be at most 262144 bytes"],
    ["a long description", { ...text("x"), description: "d".repeat(1025) }, "description: must be at most 1024 characters"],
    ["too many expressions", text("{{a}}".repeat(501)), "content.text: too many {{…}} expressions: at most 500 in all fields together"],
    ["blocks nested too deep", text("{{#if a}}".repeat(33) + "x" + "{{/if}}".repeat(33)), "content.text: does not compile: nested 33 levels deep; at most 32 levels of blocks and sub-expressions together"],
    [
      "sub-expressions nested too deep (3,000 levels once overflowed the stack after 91 s)",
      text(`{{lookup ${"(lookup ".repeat(3000)}a 'b'${")".repeat(3000)} 'c'}}`),
      "content.text: does not compile: nested 3000 levels deep; at most 32 levels of blocks and sub-expressions together",
    ],
    ["blocks and sub-expressions nested too deep together", text(`${"{{#with a}}".repeat(31)}{{lookup (lookup (lookup x 'a') 'b') 'c'}}${"{{/with}}".repeat(31)}`), "content.text: does not compile: nested 33 levels deep; at most 32 levels of blocks and sub-expressions together"],
    [
      "too many expressions in all fields together",
      { content: { text: "{{a}}".repeat(300) }, channelOverrides: [{ channel: Channel.SMS, content: { text: "{{#if a}}{{/if}}".repeat(101) } }] },
      "channel_overrides[0].content.text: too many {{…}} expressions: at most 500 in all fields together",
    ],
  ])("refuses %s", async (_name, init, message) => {
    expect(await invalid(put(init))).toBe(message);
  });

  it("accepts the largest allowed fields, and overrides alone", async () => {
    expect(templateLimits).toEqual({
      fieldMaxBytes: 262144,
      subjectMaxChars: 998,
      descriptionMaxChars: 1024,
      expressionsMax: 500,
      expressionsTotalMax: 2500,
      localesMax: 50,
    });
    expect(await put({ content: { text: "{{a}}".repeat(499), html: "{{b}}" } })).toEqual(["a", "b"]);
    expect(await put({ content: { subject: "s".repeat(998), text: "x".repeat(262144) }, description: "d".repeat(1024) })).toEqual([]);
    expect(await put({ channelOverrides: [{ channel: Channel.SMS, content: { text: "{{code}}" } }] })).toEqual(["code"]);
  });
});

describe("PutTemplate: locale variants", () => {
  const de = (content: PutInit["content"]) => ({ locale: "de", content });

  it("have their own required variables (the union over their content and overrides), the default keeps its own", async () => {
    const checked = await check({
      content: { text: "Hi {{name}}" },
      locales: [
        { locale: "de-ch", content: { subject: "Grüezi {{name}}", text: "{{#if vip}}{{perk}}{{/if}}" }, channelOverrides: [{ channel: Channel.SMS, content: { text: "{{code}}" } }] },
        { locale: "pt-BR", channelOverrides: [{ channel: Channel.PUSH, content: { text: "Olá {{nome}}" } }], requiredVariables: ["ignored"] },
      ],
    });
    expect(checked.requiredVariables).toEqual(["name"]);
    expect(checked.locales.map((l) => [l.locale, l.requiredVariables, l.channelOverrides.length])).toEqual([
      ["de-CH", ["code", "name"], 1],
      ["pt-BR", ["nome"], 1],
    ]);
  });

  it.each<[string, PutInit, string]>([
    ["a variant without locale", { content: { text: "x" }, locales: [{ content: { text: "y" } }] }, "locales[0].locale: is required: a BCP 47 language tag like de or pt-BR"],
    ["a malformed locale", { content: { text: "x" }, locales: [{ locale: "de_CH", content: { text: "y" } }] }, 'locales[0].locale: must be a BCP 47 language tag like de-CH, got "de_CH"'],
    [
      "a locale twice, however spelled",
      { content: { text: "x" }, locales: [de({ text: "a" }), { locale: "fr", content: { text: "b" } }, { locale: "DE", content: { text: "c" } }] },
      'locales[2].locale: "de" already has a variant at locales[0]',
    ],
    ["a variant with no content", { content: { text: "x" }, locales: [{ locale: "de", content: {} }] }, "locales[0].content: set at least one of subject, text or html (or a channel override)"],
    ["a variant that does not compile", { content: { text: "x" }, locales: [de({ text: "ok" }), { locale: "fr", content: { subject: "{{#if a}}" } }] }, "locales[1].content.subject: does not compile: Parse error on line 1: unexpected end of template"],
    [
      "a variant's override for a channel twice",
      { content: { text: "x" }, locales: [{ locale: "de", channelOverrides: [{ channel: Channel.SMS, content: { text: "a" } }, { channel: Channel.SMS, content: { text: "b" } }] }] },
      "locales[0].channel_overrides[1].channel: CHANNEL_SMS already has an override at locales[0].channel_overrides[0]",
    ],
    ["a variant's html for push", { content: { text: "x" }, locales: [{ locale: "de", channelOverrides: [{ channel: Channel.PUSH, content: { html: "<b>" } }] }] }, "locales[0].channel_overrides[0].content.html: only email supports html"],
    ["locales without a default", { locales: [de({ text: "y" })] }, "content: set at least one of subject, text or html (or a channel override)"],
    ["51 variants", { content: { text: "x" }, locales: Array.from({ length: 51 }, (_, i) => ({ locale: `de-v${String(i).padStart(4, "0")}`, content: { text: "y" } })) }, "locales: must have at most 50 variants"],
    ["too many expressions in one variant", { content: { text: "{{a}}".repeat(400) }, locales: [de({ text: "{{a}}".repeat(501) })] }, "locales[0].content.text: too many {{…}} expressions: at most 500 in all fields of one locale together"],
    [
      "too many expressions in the whole template",
      { content: { text: "{{a}}".repeat(500) }, locales: ["de", "fr", "es", "it", "nl"].map((locale) => ({ locale, content: { text: "{{a}}".repeat(500) } })) },
      "locales[4].content.text: too many {{…}} expressions: at most 2500 in the whole template, every locale included",
    ],
  ])("refuses %s", async (_name, init, message) => {
    expect(await invalid(check(init))).toBe(message);
  });

  it("accepts 50 variants, and 500 expressions in each of five", async () => {
    const fifty = await check({ content: { text: "x" }, locales: Array.from({ length: 50 }, (_, i) => ({ locale: `de-v${String(i).padStart(4, "0")}`, content: { text: "{{n}}" } })) });
    expect(fifty.locales).toHaveLength(50);
    const full = await check({ content: { text: "x" }, locales: ["de", "fr", "es", "it", "nl"].map((locale) => ({ locale, content: { text: "{{a}}".repeat(500) } })) });
    expect(full.locales.map((l) => l.requiredVariables)).toEqual(Array(5).fill(["a"]));
  });
});

/** A stored template version. */
function template(init: Omit<MessageInitShape<typeof TemplateSchema>, "$typeName"> & { version: number }): Template {
  return create(TemplateSchema, { templateId: "welcome", ...init });
}

/** A fake store holding `versions`, counting get calls; `fail` makes every get throw it. */
function fakeStore(versions: Template[], opts: { fail?: Error } = {}) {
  const calls: Array<[string, string, number]> = [];
  const store: Pick<TemplateStore, "get"> = {
    async get(tenant, id, version) {
      calls.push([tenant, id, version]);
      if (opts.fail) throw opts.fail;
      const mine = versions.filter((t) => tenant === "t1" && t.templateId === id);
      return version === 0 ? mine.sort((a, b) => b.version - a.version)[0] : mine.find((t) => t.version === version);
    },
  };
  return { store, calls };
}

function spec(channel: Channel, variables: Record<string, string>, version = 1, templateId = "welcome", locale = ""): NotificationSpec {
  const address =
    channel === Channel.EMAIL ? { case: "email" as const, value: "ada@example.com" } : { case: "phone" as const, value: "+14155550100" };
  return create(NotificationSpecSchema, {
    channel,
    recipient: { userId: "u-1", address },
    body: { case: "template", value: { templateId, variables, version } },
    locale,
  });
}

const welcomeInit = {
  version: 1,
  content: { subject: "Hi {{name}}", text: "Hello {{name}}{{#if code}}, code {{code}}{{/if}}", html: "<p>Hello {{name}}</p>{{{footer}}}" },
  channelOverrides: [{ channel: Channel.SMS, content: { text: "SMS for {{name}}" } }],
  requiredVariables: ["name"],
};
const welcome = template(welcomeInit);
const localized = template({
  templateId: "localized",
  version: 1,
  content: { subject: "Hi {{name}}", text: "Hello {{name}}" },
  requiredVariables: ["name"],
  locales: [
    { locale: "de", content: { subject: "Hallo {{name}}", text: "Hallo {{name}}, Code {{code}}" }, requiredVariables: ["code", "name"] },
    { locale: "pt-BR", content: { text: "Olá {{nome}}" }, channelOverrides: [{ channel: Channel.SMS, content: { text: "Oi {{nome}}" } }], requiredVariables: ["nome"] },
  ],
});

describe("renderer", () => {
  it("escapes variables in html, and not in subject or text", async () => {
    const { store } = fakeStore([welcome]);
    const out = await createRenderer({ templates: store }).render("t1", spec(Channel.EMAIL, { name: "<script>alert(1)</script>", footer: "<hr>" }));
    expect(out).toEqual({
      subject: "Hi <script>alert(1)</script>",
      text: "Hello <script>alert(1)</script>",
      html: "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt;</p><hr>",
      data: { name: "<script>alert(1)</script>", footer: "<hr>" },
    });
  });

  it("uses the channel's override, else the default content", async () => {
    const { store } = fakeStore([welcome]);
    const renderer = createRenderer({ templates: store });
    expect(await renderer.render("t1", spec(Channel.SMS, { name: "Ada" }))).toEqual({ subject: "", text: "SMS for Ada", html: "", data: { name: "Ada" } });
    expect((await renderer.render("t1", spec(Channel.EMAIL, { name: "Ada", code: "42" }))).text).toBe("Hello Ada, code 42");
  });

  it("finds dotted variables by path and never reaches prototypes", async () => {
    const t = template({ version: 1, content: { text: "{{user.name}}|{{#with user}}{{name}}{{/with}}|{{constructor}}|{{user.constructor.name}}|{{user.__proto__}}" }, requiredVariables: ["user.name"] });
    const { store } = fakeStore([t]);
    const out = await createRenderer({ templates: store }).render("t1", spec(Channel.EMAIL, { "user.name": "Ada" }));
    expect(out.text).toBe("Ada|Ada|||");
  });

  it("iterates groups of dotted variables with each, and stops a runaway loop", async () => {
    const list = template({ version: 1, content: { text: "{{#each items}}{{@key}}={{this}};{{/each}}" } });
    const bomb = template({
      templateId: "bomb",
      version: 1,
      content: { text: "{{#each @root.g}}".repeat(4) + "x" + "{{/each}}".repeat(4) },
    });
    const renderer = createRenderer({ templates: fakeStore([list, bomb]).store });
    expect((await renderer.render("t1", spec(Channel.EMAIL, { "items.a": "1", "items.b": "2" }))).text).toBe("a=1;b=2;");
    // 63^4 = 15.8 million iterations unmetered.
    const group = Object.fromEntries(Array.from({ length: 63 }, (_, i) => [`g.k${i}`, "v"]));
    const err = await renderer.render("t1", spec(Channel.EMAIL, group, 1, "bomb")).catch((e: unknown) => e);
    expect(err).toEqual(new RenderError('template "bomb" version 1: text does not render: {{#each}} output is over the budget of 4194304 characters'));
  });

  it("renders what PutTemplate accepts with ../ inside each, nested or not", async () => {
    const source = "{{#each user}}{{@key}}={{this}} of {{../team}};{{/each}}|{{#each user}}{{#each ../roles}}{{../this}}:{{this}} {{/each}}{{/each}}|{{#with user}}{{../team}}{{/with}}";
    const required = await put({ content: { text: source } });
    expect(required).toEqual([]);
    const t = template({ version: 1, content: { text: source } });
    const out = await createRenderer({ templates: fakeStore([t]).store }).render("t1", spec(Channel.EMAIL, { "user.a": "1", "user.b": "2", team: "core", "roles.r": "admin" }));
    expect(out.text).toBe("a=1 of core;b=2 of core;|1:admin 2:admin |core");
  });

  it("keeps a rendered subject on one line", async () => {
    const { store } = fakeStore([welcome]);
    const out = await createRenderer({ templates: store }).render("t1", spec(Channel.EMAIL, { name: "Ada\r\nBcc: eve@example.com" }));
    expect(out.subject).toBe("Hi Ada Bcc: eve@example.com");
  });

  it("returns inline content as given, with no template processing", async () => {
    const { store, calls } = fakeStore([]);
    const s = create(NotificationSpecSchema, {
      channel: Channel.EMAIL,
      recipient: { userId: "u", address: { case: "email", value: "a@example.com" } },
      body: { case: "content", value: { subject: "{{x}}", text: "<b>", html: "<i>{{y}}</i>", data: { k: "v" } } },
    });
    expect(await createRenderer({ templates: store }).render("t1", s)).toEqual({ subject: "{{x}}", text: "<b>", html: "<i>{{y}}</i>", data: { k: "v" } });
    expect(calls).toEqual([]);
  });

  it.each<[string, NotificationSpec, string]>([
    ["a missing variable", spec(Channel.EMAIL, { code: "1" }), 'template "welcome" version 1: missing required variable "name"'],
    ["conflicting variables", spec(Channel.EMAIL, { name: "A", "name.first": "B" }), 'template "welcome" version 1: "name" and "name.first" cannot both be set: "name.first" makes "name" a group of variables'],
    ["an unknown template", spec(Channel.EMAIL, { name: "A" }, 0, "nope"), 'no template "nope"'],
    ["an unknown version", spec(Channel.EMAIL, { name: "A" }, 7), 'template "welcome" has no version 7'],
    ["an oversized subject", spec(Channel.EMAIL, { name: "n".repeat(996) }), 'template "welcome" version 1: rendered subject is longer than 998 characters'],
  ])("throws RenderError for %s", async (_name, s, message) => {
    const { store } = fakeStore([welcome]);
    const err = await createRenderer({ templates: store }).render("t1", s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderError);
    expect((err as RenderError).message).toBe(message);
  });

  it("throws RenderError for a channel with no content", async () => {
    const t = template({ version: 2, channelOverrides: [{ channel: Channel.SMS, content: { text: "x" } }] });
    const err = await createRenderer({ templates: fakeStore([t]).store }).render("t1", spec(Channel.EMAIL, {}, 2)).catch((e: unknown) => e);
    expect(err).toEqual(new RenderError('template "welcome" version 2 has no content for CHANNEL_EMAIL'));
  });

  it("fetches and compiles a version once, sharing one fetch between concurrent renders", async () => {
    const { store, calls } = fakeStore([welcome]);
    const renderer = createRenderer({ templates: store });
    await Promise.all([renderer.render("t1", spec(Channel.EMAIL, { name: "A" })), renderer.render("t1", spec(Channel.SMS, { name: "B" }))]);
    expect((await renderer.render("t1", spec(Channel.EMAIL, { name: "C" }))).text).toBe("Hello C");
    expect(calls).toEqual([["t1", "welcome", 1]]);
  });

  it("compiles each content of a version once, only when chosen, however many channels and locales choose it", async () => {
    const real = createRenderEngine();
    const compiled: string[] = [];
    const engine: RenderEngine = { ...real, compile: (c) => (compiled.push(c.text), real.compile(c)) };
    const cache = createTemplateCache({ templates: fakeStore([localized]).store, engine });
    const entry = await cache.load("t1", create(TemplateRefSchema, { templateId: "localized", version: 1 }));
    const choose = (channel: Channel, locale: string) => entry.compiled(chooseContent(entry.template, channel, locale)!.content);
    for (const [channel, locale] of [[Channel.EMAIL, "de"], [Channel.SMS, "de-AT"], [Channel.EMAIL, "pt-BR"], [Channel.EMAIL, "de-CH"], [Channel.EMAIL, "pt-PT"]] as const) {
      choose(channel, locale);
    }
    expect(compiled).toEqual(["Hallo {{name}}, Code {{code}}", "Olá {{nome}}"]);
    expect(choose(Channel.EMAIL, "de")).toBe(choose(Channel.PUSH, "de"));
  });

  it("keeps at most maxCached versions, dropping the least recently used", async () => {
    const v2 = template({ ...welcomeInit, version: 2, content: { text: "v2 {{name}}" } });
    const v3 = template({ ...welcomeInit, version: 3, content: { text: "v3 {{name}}" } });
    const { store, calls } = fakeStore([welcome, v2, v3]);
    const renderer = createRenderer({ templates: store, maxCached: 2 });
    for (const v of [1, 2, 1, 3, 1, 2]) await renderer.render("t1", spec(Channel.EMAIL, { name: "A" }, v));
    // 1 and 2 fetched; 1 hit (now most recent); 3 evicts 2; 1 hit; 2 fetched again.
    expect(calls.map((c) => c[2])).toEqual([1, 2, 3, 2]);
  });

  it("renders the variant the locale chooses, and names it when its variables are missing", async () => {
    const renderer = createRenderer({ templates: fakeStore([localized]).store });
    const render = (channel: Channel, locale: string, variables: Record<string, string>) =>
      renderer.render("t1", spec(channel, variables, 1, "localized", locale));
    expect(await render(Channel.EMAIL, "de-AT", { name: "Ada", code: "7" })).toMatchObject({ subject: "Hallo Ada", text: "Hallo Ada, Code 7" });
    expect((await render(Channel.SMS, "pt-BR", { nome: "Ana" })).text).toBe("Oi Ana");
    expect((await render(Channel.EMAIL, "pt-PT", { nome: "Rui" })).text).toBe("Olá Rui");
    expect((await render(Channel.EMAIL, "fr", { name: "Zoé" })).text).toBe("Hello Zoé");
    // Only a notification accept never checked (a spec written before these rules) gets here.
    const err = await render(Channel.EMAIL, "de", { name: "Ada" }).catch((e: unknown) => e);
    expect(err).toEqual(new RenderError('template "localized" version 1: missing required variable "code" of the "de" variant (chosen for locale "de")'));
    const tooLong = await render(Channel.EMAIL, "de", { name: "n".repeat(996), code: "1" }).catch((e: unknown) => e);
    expect(tooLong).toEqual(new RenderError('template "localized" version 1 ("de" variant): rendered subject is longer than 998 characters'));
  });

  it("lets UnavailableError through unchanged, and does not cache it", async () => {
    const down = new UnavailableError("database", "database unavailable");
    const { store, calls } = fakeStore([welcome], { fail: down });
    const renderer = createRenderer({ templates: store });
    for (let i = 0; i < 2; i++) {
      await expect(renderer.render("t1", spec(Channel.EMAIL, { name: "A" }))).rejects.toBe(down);
    }
    expect(calls).toHaveLength(2);
  });
});

describe("accept-time pin", () => {
  const v2 = template({ ...welcomeInit, version: 2 });
  const pin = createTemplatePin({ templates: fakeStore([welcome, v2, localized]).store });

  it("pins version 0 to the latest version, keeps a given one, and leaves content alone", async () => {
    const pinned = await pin("t1", spec(Channel.EMAIL, { name: "A" }, 0));
    expect(pinned.body).toMatchObject({ case: "template", value: { templateId: "welcome", version: 2, variables: { name: "A" } } });
    expect((await pin("t1", spec(Channel.EMAIL, { name: "A" }, 1))).body.value).toMatchObject({ version: 1 });
    const content = create(NotificationSpecSchema, { body: { case: "content", value: { text: "x" } } });
    expect(await pin("t1", content)).toBe(content);
  });

  it("asks only for the chosen variant's variables", async () => {
    const pinned = await pin("t1", spec(Channel.SMS, { nome: "Ana" }, 0, "localized", "pt-BR"));
    expect(pinned).toMatchObject({ locale: "pt-BR", body: { value: { templateId: "localized", version: 1 } } });
    await expect(pin("t1", spec(Channel.EMAIL, { name: "Ada", code: "1" }, 0, "localized", "de"))).resolves.toBeDefined();
  });

  it.each<[string, NotificationSpec, string, string]>([
    ["an unknown template", spec(Channel.EMAIL, { name: "A" }, 0, "nope"), "t1", 'notification.template.template_id: no template "nope" in this tenant'],
    ["another tenant's template", spec(Channel.EMAIL, { name: "A" }, 0), "t2", 'notification.template.template_id: no template "welcome" in this tenant'],
    ["an unknown version", spec(Channel.EMAIL, { name: "A" }, 7), "t1", 'notification.template.version: template "welcome" has no version 7'],
    ["a missing variable", spec(Channel.EMAIL, { nom: "A" }, 0), "t1", 'notification.template.variables: missing required variable "name"'],
    [
      "a variable of the variant the locale chooses",
      spec(Channel.EMAIL, { name: "A" }, 0, "localized", "de-AT"),
      "t1",
      'notification.template.variables: missing required variable "code" of the "de" variant (chosen for locale "de-AT")',
    ],
    ["a default variable, for a locale with no variant", spec(Channel.EMAIL, { nome: "A" }, 0, "localized", "fr"), "t1", 'notification.template.variables: missing required variable "name"'],
  ])("refuses %s", async (_name, s, tenant, message) => {
    const err = await pin(tenant, s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toBe(message);
  });
});
