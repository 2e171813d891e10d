import type { TemplateRef } from "../../gen/herald/v1/notification_pb.js";
import type { Template, TemplateContent } from "../../gen/herald/v1/template_pb.js";
import type { TemplateStore } from "../store/templates.js";
import { RenderError, type CompiledContent, type RenderEngine } from "./render-fields.js";

// Template versions as the workers' renderer uses them: fetched and compiled once per
// (tenant, id, version). Versions are immutable, so the cache never needs invalidating, only
// bounding.

export interface CachedTemplate {
  template: Template;
  /** `content`, one of `template`'s own (default, override or locale variant), compiled on first use. */
  compiled(content: TemplateContent): CompiledContent;
}

export interface TemplateCache {
  /** The version `ref` names, or the latest for version 0; throws RenderError when there is none, or the store's errors. */
  load(tenant: string, ref: TemplateRef): Promise<CachedTemplate>;
}

export function createTemplateCache(deps: {
  templates: Pick<TemplateStore, "get">;
  engine: RenderEngine;
  /** Compiled template versions kept. @defaultValue 1000 */
  maxCached?: number;
}): TemplateCache {
  const { engine, maxCached = 1000 } = deps;
  // Insertion order is recency order: a hit is moved to the end, the first key is the eldest.
  // Promises are cached, so concurrent renders of one version share one fetch.
  const cache = new Map<string, Promise<CachedTemplate>>();

  function entry(template: Template): CachedTemplate {
    // Keyed by the content message itself: a version's contents are fixed objects, so each is
    // compiled once however many channels and locales choose it, and only those chosen are.
    const byContent = new Map<TemplateContent, CompiledContent>();
    return {
      template,
      compiled(content) {
        let compiled = byContent.get(content);
        if (!compiled) byContent.set(content, (compiled = engine.compile(content)));
        return compiled;
      },
    };
  }

  function cached(key: string, fetch: () => Promise<Template>): Promise<CachedTemplate> {
    const hit = cache.get(key);
    if (hit) {
      cache.delete(key);
      cache.set(key, hit);
      return hit;
    }
    const loaded = fetch().then(entry);
    cache.set(key, loaded);
    // Failures are not cached: a store outage must not outlive itself.
    loaded.catch(() => cache.get(key) === loaded && cache.delete(key));
    if (cache.size > maxCached) cache.delete(cache.keys().next().value!);
    return loaded;
  }

  return {
    async load(tenant, ref) {
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
    },
  };
}

const cacheKey = (tenant: string, templateId: string, version: number): string =>
  JSON.stringify([tenant, templateId, version]);
