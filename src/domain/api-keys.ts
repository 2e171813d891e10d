import { createHash } from "node:crypto";

// API keys are kept only as SHA-256 hashes: a leaked config file or heap dump
// does not leak usable keys. Keys are long random strings, so an unsalted fast
// hash is enough (there is no dictionary to attack).

/** The dev-mode key, accepted for tenant "dev" only when the process runs `dev`. */
export const DEV_API_KEY = "herald-dev-key";
export const DEV_TENANT = "dev";

/** Hash of an API key → tenant. */
export type ApiKeyTable = ReadonlyMap<string, string>;

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** What a tenant name may be, for env keys and stored keys alike. */
export const TENANT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Parses key entries, one per line or comma: `tenant:sha256:<hex>` (preferred;
 * `herald hash-key` prints the hash) or `tenant:<plain key>` (hashed at once).
 */
export function parseApiKeys(text: string, opts: { devKey: boolean }): ApiKeyTable {
  const table = new Map<string, string>();
  for (const raw of text.split(/[\n,]/)) {
    const entry = raw.trim();
    if (!entry || entry.startsWith("#")) continue;
    const i = entry.indexOf(":");
    const tenant = entry.slice(0, i);
    const rest = entry.slice(i + 1);
    if (i <= 0 || !TENANT.test(tenant) || !rest) {
      throw new Error(`API key entry "${entry.slice(0, 20)}…": expected tenant:sha256:<hex> or tenant:<key>, tenant matching ${TENANT}`);
    }
    const hash = rest.startsWith("sha256:") ? rest.slice(7).toLowerCase() : hashApiKey(rest);
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`API key entry for tenant ${tenant}: malformed sha256 hash`);
    table.set(hash, tenant);
  }
  if (opts.devKey) table.set(hashApiKey(DEV_API_KEY), DEV_TENANT);
  return table;
}
