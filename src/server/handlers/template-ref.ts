import type { NotificationSpec } from "../../../gen/herald/v1/notification_pb.js";
import { invalidArgument } from "../../domain/validate.js";
import type { TemplateStore } from "../../store/templates.js";
import { checkReference } from "../../templates/render-fields.js";

/**
 * Checks a validated spec's TemplateRef against the tenant's templates and
 * returns the spec to store, its version pinned (0 becomes the latest
 * version's number), so a later PutTemplate does not change what an accepted
 * notification says. A spec with inline content is returned as it is.
 */
export type PinTemplate = (tenant: string, spec: NotificationSpec, path?: string) => Promise<NotificationSpec>;
// `path` names the TemplateRef's parent ("notification"; "" for a request's own `template` field).

/**
 * One primary-key lookup per templated accept, uncached: versions never
 * change, but "the latest" does, and a caller who just stored version N+1
 * expects the next notification to use it. (A miss on a given version costs a
 * second lookup, on the error path only, to say which of id or version is wrong.)
 */
export function createTemplatePin(deps: { templates: Pick<TemplateStore, "get"> }): PinTemplate {
  return async (tenant, spec, path = "notification") => {
    if (spec.body.case !== "template") return spec;
    const ref = spec.body.value;
    const p = path === "" ? "template" : `${path}.template`;
    const template = await deps.templates.get(tenant, ref.templateId, ref.version);
    if (!template) {
      const exists = ref.version !== 0 && (await deps.templates.get(tenant, ref.templateId, 0)) !== undefined;
      if (exists) throw invalidArgument(`${p}.version`, `template ${JSON.stringify(ref.templateId)} has no version ${ref.version}`);
      throw invalidArgument(`${p}.template_id`, `no template ${JSON.stringify(ref.templateId)} in this tenant`);
    }
    // The content the spec's locale selects: its variant's required variables are the ones that
    // must be here, and no other variant's, since the version and locale are fixed from now on.
    const { problem } = checkReference(template, spec.channel, spec.locale, ref.variables);
    if (problem) throw invalidArgument(`${p}.${problem.field}`, problem.rule);
    if (ref.version === template.version) return spec;
    return { ...spec, body: { case: "template", value: { ...ref, version: template.version } } };
  };
}
