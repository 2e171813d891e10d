import type { NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import type { TemplateStore } from "../store/templates.js";
import { checkReference, createRenderEngine, FieldRenderError, RenderError, renderedSizeProblem } from "./render-fields.js";
import { createTemplateCache } from "./template-cache.js";

// What channel workers call to turn a notification into the message they send: its content as
// it is, or its template (through the cache of compiled versions) rendered with its variables.

/** A message ready for a provider. */
export interface Rendered {
  subject: string;
  text: string;
  html: string;
  /** Push data, webhook fields: Content.data, or a template's variables. */
  data: Record<string, string>;
}

export interface Renderer {
  /** Throws RenderError (permanent) or the store's errors (UnavailableError: retry later). */
  render(tenant: string, spec: NotificationSpec): Promise<Rendered>;
}

export function createRenderer(deps: {
  templates: Pick<TemplateStore, "get">;
  /** Compiled template versions kept. @defaultValue 1000 */
  maxCached?: number;
}): Renderer {
  const engine = createRenderEngine();
  const cache = createTemplateCache({ ...deps, engine });

  return {
    async render(tenant, spec) {
      const body = spec.body;
      if (body.case === "content") {
        const { subject, text, html, data } = body.value;
        return { subject, text, html, data: { ...data } };
      }
      if (body.case !== "template") throw new RenderError("notification has no body");
      const ref = body.value;
      const entry = await cache.load(tenant, ref);
      const { template } = entry;
      const where = `template ${JSON.stringify(template.templateId)} version ${template.version}`;
      // The same choice accept checked (locale-variant.ts): variant by locale, then channel.
      const { choice, problem } = checkReference(template, spec.channel, spec.locale, ref.variables);
      if (problem) throw new RenderError(problem.field === "variables" ? `${where}: ${problem.rule}` : problem.rule);

      const which = choice.variant ? `${where} (${JSON.stringify(choice.variant.locale)} variant)` : where;
      let out: Omit<Rendered, "data">;
      try {
        out = engine.render(entry.compiled(choice.content), ref.variables);
      } catch (err) {
        if (err instanceof FieldRenderError) throw new RenderError(`${which}: ${err.message}`, { cause: err });
        throw err;
      }
      const tooBig = renderedSizeProblem(out);
      if (tooBig) throw new RenderError(`${which}: ${tooBig}`);
      return { ...out, data: { ...ref.variables } };
    },
  };
}
