import type { HandlerContext } from "@connectrpc/connect";
import { Channel } from "../../../../gen/herald/v1/notification_pb.js";
import type {
  PutTemplateRequest,
  PutTemplateResponse,
  TemplateContent,
} from "../../../../gen/herald/v1/template_pb.js";
import { invalidArgument, limits, longerThan } from "../../../domain/validate.js";
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
  expressionsMax: 500, // "{{" in all fields of the request together
} as const;

// The same rule as TemplateRef.template_id (domain/validate.ts).
const templateIdPattern = /^[A-Za-z0-9._-]+$/;

/** PutTemplate: validate and compile every field, then store the next version. */
export function putTemplateHandler(deps: { templates: Pick<TemplateStore, "put">; clock: Clock; compiler: TemplateCompiler }) {
  return async (req: PutTemplateRequest, ctx: HandlerContext): Promise<Pick<PutTemplateResponse, "template">> => {
    const call = callInfo(ctx);
    const requiredVariables = await checkPutTemplate(deps.compiler, req);
    const template = await deps.templates.put(
      call.tenant,
      {
        templateId: req.templateId,
        content: req.content,
        channelOverrides: req.channelOverrides,
        description: req.description,
        requiredVariables,
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

/**
 * Every rule of PutTemplate, in field order; throws InvalidArgument naming the
 * first broken one. Returns the required variables: the union over the
 * default content and every override (sorted, unique), since the contract
 * promises one list that every notification using the version supplies.
 */
export async function checkPutTemplate(compiler: TemplateCompiler, req: PutTemplateRequest): Promise<string[]> {
  validateTemplateId(req.templateId);
  const seen: Seen = { required: new Set(), expressions: 0 };
  let anyContent = false;
  if (req.content) anyContent = await checkContent(compiler, req.content, "content", seen);

  const overridden = new Map<Channel, number>();
  for (const [i, override] of req.channelOverrides.entries()) {
    const path = `channel_overrides[${i}]`;
    if (override.channel === Channel.UNSPECIFIED) {
      throw invalidArgument(`${path}.channel`, "is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK");
    }
    if (!(override.channel in Channel)) throw invalidArgument(`${path}.channel`, `must be a known channel, got ${override.channel}`);
    const first = overridden.get(override.channel);
    if (first !== undefined) {
      throw invalidArgument(`${path}.channel`, `CHANNEL_${Channel[override.channel]} already has an override at channel_overrides[${first}]`);
    }
    overridden.set(override.channel, i);
    const c = override.content;
    if (!c || !(await checkContent(compiler, c, `${path}.content`, seen))) {
      throw invalidArgument(`${path}.content`, "set at least one of subject, text or html");
    }
    if (c.html !== "" && override.channel !== Channel.EMAIL) throw invalidArgument(`${path}.content.html`, "only email supports html");
    anyContent = true;
  }
  if (!anyContent) throw invalidArgument("content", "set at least one of subject, text or html (or a channel override)");

  if (longerThan(req.description, templateLimits.descriptionMaxChars)) {
    throw invalidArgument("description", `must be at most ${templateLimits.descriptionMaxChars} characters`);
  }
  return [...seen.required].sort();
}

/** What the fields checked so far add up to. */
interface Seen {
  required: Set<string>;
  expressions: number;
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
    for (let at = source.indexOf("{{"); at !== -1; at = source.indexOf("{{", at + 2)) seen.expressions++;
    if (seen.expressions > templateLimits.expressionsMax) {
      throw invalidArgument(p, `too many {{…}} expressions: at most ${templateLimits.expressionsMax} in all fields together`);
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
