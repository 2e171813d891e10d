import { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { Template, TemplateContent } from "../../gen/herald/v1/template_pb.js";
import { longerThan } from "../domain/validate.js";
import { PermanentError } from "../errors.js";
import type Handlebars from "handlebars";
import { compileOptions, createEngine, shortMessage, templateFields, type TemplateField } from "./compile.js";
import { chooseContent, type ContentChoice } from "./locale-variant.js";

// The pure half of rendering: whether a set of variables can render a template
// (with the content locale-variant.ts chooses), and rendering a content's fields. The
// accept-time check (server/handlers/template-ref.ts) and the workers' renderer
// (notification-renderer.ts) share the rules here, so a notification that was
// accepted renders.

/** The rendered message must stay within what providers take. */
export const renderLimits = {
  subjectMaxChars: 998, // RFC 5322 line length, as for Content.subject
  bodyMaxBytes: 1024 * 1024, // rendered text + html, UTF-8
} as const;

/** Why a TemplateRef cannot render, naming its field at fault. */
export interface ReferenceProblem {
  field: "template_id" | "variables";
  rule: string;
}

/** A TemplateRef checked against its template: the content it renders, or why it cannot. */
export type CheckedReference = { choice: ContentChoice; problem?: undefined } | { choice?: undefined; problem: ReferenceProblem };

/**
 * Whether `variables` can render `template` on `channel` in `locale` ("" for none): the content
 * they render (locale-variant.ts chooses it), whose variant's required variables they all hold.
 */
export function checkReference(template: Template, channel: Channel, locale: string, variables: Record<string, string>): CheckedReference {
  const choice = chooseContent(template, channel, locale);
  if (!choice) {
    const where = locale === "" ? "" : ` in locale ${JSON.stringify(locale)} or its default`;
    const rule = `template ${JSON.stringify(template.templateId)} version ${template.version} has no content for CHANNEL_${Channel[channel]}${where}`;
    return { problem: { field: "template_id", rule } };
  }
  const conflict = variableConflict(variables);
  if (conflict) {
    const [group, member] = conflict.map((v) => JSON.stringify(v));
    return { problem: { field: "variables", rule: `${group} and ${member} cannot both be set: ${member} makes ${group} a group of variables` } };
  }
  const missing = choice.requiredVariables.find((name) => !Object.hasOwn(variables, name));
  if (missing !== undefined) {
    // Naming the variant: the caller may not know that this locale renders one.
    const of = choice.variant ? ` of the ${JSON.stringify(choice.variant.locale)} variant (chosen for locale ${JSON.stringify(locale)})` : "";
    return { problem: { field: "variables", rule: `missing required variable ${JSON.stringify(missing)}${of}` } };
  }
  return { choice };
}

/**
 * Two variables where one names a group holding the other ("user" and
 * "user.name"): `{{user}}` cannot be both a value and a group. The first such
 * pair in key order, or undefined.
 */
export function variableConflict(variables: Record<string, string>): [string, string] | undefined {
  for (const key of Object.keys(variables).sort()) {
    for (let dot = key.indexOf("."); dot !== -1; dot = key.indexOf(".", dot + 1)) {
      const prefix = key.slice(0, dot);
      if (Object.hasOwn(variables, prefix)) return [prefix, key];
    }
  }
  return undefined;
}

type Context = { [name: string]: string | Context };

/**
 * The prototype of every context object: no string keys, so no variable name reaches
 * Object.prototype; but a primitive value, because Handlebars compares contexts loosely
 * (`context != depths[0]` in its runtime, on every block that can see `../`), and comparing a
 * string with an object that has no prototype at all throws "Cannot convert object to
 * primitive value". It prints as a plain object would.
 */
const contextPrototype: object = Object.freeze(
  Object.create(null, { [Symbol.toPrimitive]: { value: () => "[object Object]", enumerable: false } }) as object,
);
const newNode = (): Context => Object.create(contextPrototype) as Context;

/**
 * The Handlebars context for flat variables: "user.name" becomes user → name,
 * so `{{user.name}}` and `{{#with user}}{{name}}{{/with}}` find it. Objects
 * inherit only contextPrototype. Conflicting names (see variableConflict) must
 * have been refused before.
 */
export function renderContext(variables: Record<string, string>): Context {
  const root: Context = newNode();
  for (const [key, value] of Object.entries(variables)) {
    const parts = key.split(".");
    let node = root;
    for (const part of parts.slice(0, -1)) {
      let next = node[part];
      if (typeof next !== "object") node[part] = next = newNode();
      node = next;
    }
    node[parts[parts.length - 1]!] = value;
  }
  return root;
}

/** One content's fields, compiled (Handlebars compiles on the first call). Empty fields are undefined. */
export type CompiledContent = Record<TemplateField, Handlebars.TemplateDelegate<Context> | undefined>;

/** Compiles contents and renders them within a budget. */
export interface RenderEngine {
  compile(content: TemplateContent): CompiledContent;
  /** Renders every field; throws FieldRenderError (a Handlebars failure, or the budget spent). */
  render(compiled: CompiledContent, variables: Record<string, string>): Record<TemplateField, string>;
}

// Without loops, output is bounded by the template and its variables (a few
// MiB at most). `{{#each}}` multiplies: nested four deep over a 64-entry
// group it is 16 million iterations, minutes of CPU in a worker. So the
// built-in `each` is wrapped, unchanged otherwise: every iteration spends its
// output's length (UTF-16 units) plus a fixed cost, so empty iterations count
// too, from a per-field budget, and rendering fails when it runs out. Nested
// iterations are counted at each level, hence the headroom over
// renderLimits.bodyMaxBytes.
const iterationCost = 64;
const budgetPerField = 4 * renderLimits.bodyMaxBytes;

export function createRenderEngine(): RenderEngine {
  const engine = createEngine();
  // Rendering is synchronous, so one counter per engine serves every render.
  let remaining = 0;
  const each = engine.helpers["each"]!;
  engine.registerHelper("each", function (this: unknown, context: unknown, options?: Handlebars.HelperOptions): unknown {
    if (!options) return each.call(this, context);
    const fn = options.fn;
    const metered = (value: unknown, runtime?: Handlebars.RuntimeOptions): string => {
      const out = fn(value, runtime);
      remaining -= out.length + iterationCost;
      if (remaining < 0) throw new Error(`{{#each}} output is over the budget of ${budgetPerField} characters`);
      return out;
    };
    return each.call(this, context, { ...options, fn: metered });
  });

  return {
    compile(content) {
      const compiled = {} as CompiledContent;
      for (const field of templateFields) {
        const source = content[field];
        compiled[field] = source === "" ? undefined : engine.compile<Context>(source, compileOptions(field));
      }
      return compiled;
    },
    render(compiled, variables) {
      const context = renderContext(variables);
      const out = { subject: "", text: "", html: "" };
      for (const field of templateFields) {
        const fn = compiled[field];
        if (!fn) continue;
        remaining = budgetPerField;
        try {
          out[field] = fn(context);
        } catch (err) {
          throw new FieldRenderError(field, err);
        }
      }
      // A subject is one header line: a variable must not be able to add lines to it.
      out.subject = out.subject.replace(/[\r\n]+/g, " ");
      return out;
    },
  };
}

/** A Handlebars failure while rendering one field: the same variables fail the same way again. */
export class FieldRenderError extends PermanentError {
  override name = "FieldRenderError";
  constructor(
    readonly field: TemplateField,
    cause: unknown,
  ) {
    super(`${field} does not render: ${shortMessage(cause)}`, { cause });
  }
}

/** A notification that can never render: unknown template or version, missing variable, render failure. */
export class RenderError extends PermanentError {
  override name = "RenderError";
}

/** Why a rendered message is too large to send, or undefined. */
export function renderedSizeProblem(out: Record<TemplateField, string>): string | undefined {
  if (longerThan(out.subject, renderLimits.subjectMaxChars)) {
    return `rendered subject is longer than ${renderLimits.subjectMaxChars} characters`;
  }
  if (Buffer.byteLength(out.text) + Buffer.byteLength(out.html) > renderLimits.bodyMaxBytes) {
    return `rendered text and html are larger than ${renderLimits.bodyMaxBytes} bytes`;
  }
  return undefined;
}
