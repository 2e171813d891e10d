import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Channel } from "../../../../gen/herald/v1/notification_pb.js";
import {
  LocaleContentSchema,
  type ChannelContent,
  type LocaleContent,
  type PutTemplateRequest,
  type PutTemplateResponse,
  type TemplateContent,
} from "../../../../gen/herald/v1/template_pb.js";
import { invalidArgument, limits, longerThan, validateLocale } from "../../../domain/validate.js";
import type { TemplateStore } from "../../../store/templates.js";
import { templateFields, TemplateSyntaxError } from "../../../templates/compile.js";
import type { TemplateCompiler } from "../../../templates/compile-pool.js";
import { callInfo } from "../../call-info.js";
import { type Clock } from "../../../clock.js";

/** PutTemplate's limits, on the template source (what it renders to is bounded again at delivery). */
export const templateLimits = {
  fieldMaxBytes: 256 * 1024, // each of subject, text, html; UTF-8
  subjectMaxChars: limits.subjectMaxChars,
  descriptionMaxChars: 1024,
  // Parsing and compiling took 0.2-0.6 ms per {{…}} on a 2-core machine (in a
  // worker thread, under a deadline: templates/compile-pool.ts); real templates
  // use tens. This bounds one PutTemplate to a few hundred ms of a thread.
  expressionsMax: 500, // "{{" in all fields of one variant (the default, or one locale) together
  // Bounds the whole request to about a second of the compile thread, however many locales.
  expressionsTotalMax: 2500,
  localesMax: 50,
} as const;

// The same rule as TemplateRef.template_id (domain/validate.ts).
const templateIdPattern = /^[A-Za-z0-9._-]+$/;

/** PutTemplate: validate and compile every field, then store the next version. */
export function putTemplateHandler(deps: { templates: Pick<TemplateStore, "put">; clock: Clock; compiler: TemplateCompiler }) {
  return async (req: PutTemplateRequest, ctx: HandlerContext): Promise<Pick<PutTemplateResponse, "template">> => {
    const call = callInfo(ctx);
    const { requiredVariables, locales } = await checkPutTemplate(deps.compiler, req);
    const template = await deps.templates.put(
      call.tenant,
      {
        templateId: req.templateId,
        content: req.content,
        channelOverrides: req.channelOverrides,
        description: req.description,
        requiredVariables,
        locales,
      },
      new Date(deps.clock.now()),
    );
    call.log.info({ templateId: template.templateId, version: template.version }, "template stored");
    return { template };
  };
}

export function validateTemplateId(id: string, path = "template_id"): void {
  if (id === "") throw invalidArgument(path, "is required");
  if (id.length > limits.templateIdMaxChars || !templateIdPattern.test(id)) {
    throw invalidArgument(path, `must be 1 to ${limits.templateIdMaxChars} characters of [A-Za-z0-9._-]`);
  }
}

/** What PutTemplate's checks make of a request: what the version stores beside its sources. */
export interface CheckedTemplate {
  /** The default content's and its overrides' (sorted, unique). */
  requiredVariables: string[];
  /** The request's variants, their locales canonical, each with its own required variables. */
  locales: LocaleContent[];
}

/**
 * Every rule of PutTemplate, in field order; throws InvalidArgument naming the
 * first broken one. Required variables are per variant, each the union over the
 * variant's content and its overrides (the default is a variant too: its list is
 * the template's, as before locales). Accept knows the notification's locale, so
 * the variant it renders (templates/locale-variant.ts), and asks for that
 * variant's variables only, never for another language's.
 */
export async function checkPutTemplate(compiler: TemplateCompiler, req: PutTemplateRequest): Promise<CheckedTemplate> {
  validateTemplateId(req.templateId);
  const total = { expressions: 0 };
  const fallback = await checkVariant(compiler, req.content, req.channelOverrides, "", total);
  if (!fallback) throw invalidArgument("content", "set at least one of subject, text or html (or a channel override)");

  if (longerThan(req.description, templateLimits.descriptionMaxChars)) {
    throw invalidArgument("description", `must be at most ${templateLimits.descriptionMaxChars} characters`);
  }

  if (req.locales.length > templateLimits.localesMax) {
    throw invalidArgument("locales", `must have at most ${templateLimits.localesMax} variants`);
  }
  const locales: LocaleContent[] = [];
  const listed = new Map<string, number>();
  for (const [i, variant] of req.locales.entries()) {
    const path = `locales[${i}]`;
    if (variant.locale === "") throw invalidArgument(`${path}.locale`, "is required: a BCP 47 language tag like de or pt-BR");
    const locale = validateLocale(variant.locale, `${path}.locale`);
    const first = listed.get(locale.toLowerCase());
    if (first !== undefined) throw invalidArgument(`${path}.locale`, `${JSON.stringify(locale)} already has a variant at locales[${first}]`);
    listed.set(locale.toLowerCase(), i);
    const required = await checkVariant(compiler, variant.content, variant.channelOverrides, `${path}.`, total);
    if (!required) throw invalidArgument(`${path}.content`, "set at least one of subject, text or html (or a channel override)");
    locales.push(
      create(LocaleContentSchema, { locale, content: variant.content, channelOverrides: variant.channelOverrides, requiredVariables: required }),
    );
  }
  return { requiredVariables: fallback, locales };
}

/**
 * Checks one variant (the default when `prefix` is "", else `locales[i].`): its content and
 * overrides, compiled. Returns its required variables (sorted, unique), or undefined when it
 * has no content at all.
 */
async function checkVariant(
  compiler: TemplateCompiler,
  content: TemplateContent | undefined,
  overrides: readonly ChannelContent[],
  prefix: string,
  total: { expressions: number },
): Promise<string[] | undefined> {
  const seen: Seen = { required: new Set(), expressions: 0, total, of: prefix === "" ? "" : " of one locale" };
  let anyContent = false;
  if (content) anyContent = await checkContent(compiler, content, `${prefix}content`, seen);

  const overridden = new Map<Channel, number>();
  for (const [i, override] of overrides.entries()) {
    const path = `${prefix}channel_overrides[${i}]`;
    if (override.channel === Channel.UNSPECIFIED) {
      throw invalidArgument(`${path}.channel`, "is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK");
    }
    if (!(override.channel in Channel)) throw invalidArgument(`${path}.channel`, `must be a known channel, got ${override.channel}`);
    const first = overridden.get(override.channel);
    if (first !== undefined) {
      throw invalidArgument(`${path}.channel`, `CHANNEL_${Channel[override.channel]} already has an override at ${prefix}channel_overrides[${first}]`);
    }
    overridden.set(override.channel, i);
    const c = override.content;
    if (!c || !(await checkContent(compiler, c, `${path}.content`, seen))) {
      throw invalidArgument(`${path}.content`, "set at least one of subject, text or html");
    }
    if (c.html !== "" && override.channel !== Channel.EMAIL) throw invalidArgument(`${path}.content.html`, "only email supports html");
    anyContent = true;
  }
  return anyContent ? [...seen.required].sort() : undefined;
}

/** What the fields of one variant checked so far add up to. */
interface Seen {
  required: Set<string>;
  expressions: number;
  /** Expressions in the whole request, every variant's. */
  total: { expressions: number };
  /** How the per-variant expression limit names its scope: "" for the default, " of one locale". */
  of: string;
}

/** Checks and compiles one content's fields, adding to `seen`; returns whether any field is set. */
async function checkContent(compiler: TemplateCompiler, content: TemplateContent, path: string, seen: Seen): Promise<boolean> {
  let any = false;
  for (const field of templateFields) {
    const source = content[field];
    if (source === "") continue;
    any = true;
    const p = `${path}.${field}`;
    if (Buffer.byteLength(source) > templateLimits.fieldMaxBytes) {
      throw invalidArgument(p, `must be at most ${templateLimits.fieldMaxBytes} bytes`);
    }
    if (field === "subject" && longerThan(source, templateLimits.subjectMaxChars)) {
      throw invalidArgument(p, `must be at most ${templateLimits.subjectMaxChars} characters`);
    }
    let expressions = 0;
    for (let at = source.indexOf("{{"); at !== -1; at = source.indexOf("{{", at + 2)) expressions++;
    seen.expressions += expressions;
    seen.total.expressions += expressions;
    if (seen.expressions > templateLimits.expressionsMax) {
      throw invalidArgument(p, `too many {{…}} expressions: at most ${templateLimits.expressionsMax} in all fields${seen.of} together`);
    }
    if (seen.total.expressions > templateLimits.expressionsTotalMax) {
      throw invalidArgument(p, `too many {{…}} expressions: at most ${templateLimits.expressionsTotalMax} in the whole template, every locale included`);
    }
    try {
      for (const name of await compiler.analyze(source, field)) seen.required.add(name);
    } catch (err) {
      if (err instanceof TemplateSyntaxError) throw invalidArgument(p, `does not compile: ${err.message}`);
      throw err;
    }
  }
  return any;
}
