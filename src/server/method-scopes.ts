import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { OperationsService } from "../../gen/herald/v1/operations_pb.js";
import { SuppressionService } from "../../gen/herald/v1/suppression_pb.js";
import { RecipientService } from "../../gen/herald/v1/recipient_pb.js";
import type { Scope } from "../domain/key-format.js";

// The one table of which scope each RPC needs (README, "API keys"). The rule: `send` makes and
// cancels notifications; `read` reads what a tenant has (notifications and their status,
// templates, recipients, preferences, categories, suppressions, dead letters); `admin` changes
// everything else, erases people's data, and sees the deployment-wide operations view (it is not
// scoped to a tenant). Each service's row is typed by its generated method names, so an RPC added
// to proto/ does not compile until it has a scope here; test/unit/key-scopes.test.ts checks the
// same at run time, against every service the server mounts.

type ScopesOf<S extends DescService> = S extends { method: infer M } ? { readonly [K in keyof M]: Scope } : never;

function row<S extends DescService>(service: S, scopes: ScopesOf<S>): [DescService, Readonly<Record<string, Scope>>] {
  return [service, scopes];
}

const table = [
  row(NotificationService, {
    create: "send",
    schedule: "send",
    notify: "send",
    createBatch: "send",
    cancel: "send",
    get: "read",
    watchStatus: "read",
  }),
  row(TemplateService, { putTemplate: "admin", getTemplate: "read", listTemplates: "read" }),
  row(RecipientService, {
    putRecipient: "admin",
    getRecipient: "read",
    deleteRecipient: "admin",
    listRecipients: "read",
    getPreferences: "read",
    setPreferences: "admin",
    putCategory: "admin",
    listCategories: "read",
    deleteCategory: "admin",
    eraseRecipient: "admin",
  }),
  row(SuppressionService, { listSuppressions: "read", addSuppression: "admin", removeSuppression: "admin" }),
  row(DeadLetterService, { listDeadLetters: "read", getDeadLetter: "read", redriveDeadLetters: "admin" }),
  row(OperationsService, { getOverview: "admin" }),
];

/** The services whose calls need a key, hence a scope: every one the API serves but health and reflection. */
export const scopedServices: readonly DescService[] = table.map(([service]) => service);

const byMethod = new Map<DescMethod, Scope>();
const byName = new Map<string, Scope>();
for (const [service, scopes] of table) {
  for (const method of service.methods) {
    const scope = scopes[method.localName];
    if (scope === undefined) continue;
    byMethod.set(method, scope);
    byName.set(`${service.typeName}/${method.name}`, scope);
  }
}

/**
 * The scope `method` needs. A method missing from the table (one served without being added
 * here, which the types and the test prevent) needs `admin`: an omission fails closed.
 */
export function requiredScope(method: DescMethod): Scope {
  // By descriptor on the hot path; by name for a descriptor built elsewhere (a second copy of gen/).
  return byMethod.get(method) ?? byName.get(`${method.parent.typeName}/${method.name}`) ?? "admin";
}

/** "Service/Method" → scope, for docs and the test that every RPC has one. */
export function scopeTable(): ReadonlyMap<string, Scope> {
  return byName;
}
