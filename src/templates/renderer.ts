import type { Channel, NotificationSpec, TemplateRef } from "../../gen/herald/v1/notification_pb.js";
import type { Template } from "../../gen/herald/v1/template_pb.js";
import { PermanentError } from "../errors.js";
import type { TemplateStore } from "../store/templates.js";
import {
  contentFor,
  createRenderEngine,
  FieldRenderError,
  referenceProblem,
  renderedSizeProblem,
  type CompiledContent,
} from "./render.js";

// What channel workers call to turn a notification into the message they
// send. Templates are fetched and compiled once per (tenant, id, version):
// versions are immutable, so the cache never needs invalidating, only bounding.

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

/** A notification that can never render: unknown template or version, missing variable, render failure. */
export class RenderError extends PermanentError {
  override name = "RenderError";
}

interface Entry {
  template: Template;
  /** Compiled content per channel, filled on first use. */
  compiled: Map<Channel, CompiledContent>;
}

export function createRenderer(deps: {
  templates: Pick<TemplateStore, "get">;
  /** Compiled template versions kept. @defaultValue 1000 */
  maxCached?: number;
}): Renderer {
  const engine = createRenderEngine();
  const maxCached = deps.maxCached ?? 1000;
  // Insertion order is recency order: a hit is moved to the end, the first key is the eldest.
  // Promises are cached, so concurrent renders of one version share one fetch.
  const cache = new Map<string, Promise<Entry>>();

  function cached(key: string, fetch: () => Promise<Template>): Promise<Entry> {
    const hit = cache.get(key);
    if (hit) {
      cache.delete(key);
      cache.set(key, hit);
      return hit;
    }
    const entry = fetch().then((template) => ({ template, compiled: new Map<Channel, CompiledContent>() }));
    cache.set(key, entry);
    // Failures are not cached: a store outage must not outlive itself.
    entry.catch(() => cache.get(key) === entry && cache.delete(key));
    if (cache.size > maxCached) cache.delete(cache.keys().next().value!);
    return entry;
  }

  async function load(tenant: string, ref: TemplateRef): Promise<Entry> {
    const id = JSON.stringify(ref.templateId);
    if (ref.version === 0) {
      // Accepted notifications carry a pinned version; an unpinned one renders
      // the latest, which is looked up every time and cached by its number.
      const latest = await deps.templates.get(tenant, ref.templateId, 0);
      if (!latest) throw new RenderError(`no template ${id}`);
      return cached(cacheKey(tenant, ref.templateId, latest.version), async () => latest);
    }
    return cached(cacheKey(tenant, ref.templateId, ref.version), async () => {
      const template = await deps.templates.get(tenant, ref.templateId, ref.version);
      if (!template) throw new RenderError(`template ${id} has no version ${ref.version}`);
      return template;
    });
  }

  return {
    async render(tenant, spec) {
      const body = spec.body;
      if (body.case === "content") {
        const { subject, text, html, data } = body.value;
        return { subject, text, html, data: { ...data } };
      }
      if (body.case !== "template") throw new RenderError("notification has no body");
      const ref = body.value;
      const entry = await load(tenant, ref);
      const { template } = entry;
      const where = `template ${JSON.stringify(template.templateId)} version ${template.version}`;
      const problem = referenceProblem(template, spec.channel, ref.variables);
      if (problem) throw new RenderError(problem.field === "variables" ? `${where}: ${problem.rule}` : problem.rule);

      let compiled = entry.compiled.get(spec.channel);
      if (!compiled) {
        compiled = engine.compile(contentFor(template, spec.channel)!);
        entry.compiled.set(spec.channel, compiled);
      }
      let out: Omit<Rendered, "data">;
      try {
        out = engine.render(compiled, ref.variables);
      } catch (err) {
        if (err instanceof FieldRenderError) throw new RenderError(`${where}: ${err.message}`, { cause: err });
        throw err;
      }
      const tooBig = renderedSizeProblem(out);
      if (tooBig) throw new RenderError(`${where}: ${tooBig}`);
      return { ...out, data: { ...ref.variables } };
    },
  };
}

const cacheKey = (tenant: string, templateId: string, version: number): string =>
  JSON.stringify([tenant, templateId, version]);
