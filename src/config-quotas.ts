import { ConfigError, fileText, type Env } from "./config-env.js";

// Per-tenant accept quotas (README, "Tenant quotas and fair delivery"): a token bucket per tenant,
// `rate` notifications a second refilled up to `burst`. Off unless configured, so a deployment
// that sets nothing behaves as before.
//
//   HERALD_TENANT_QUOTA="50/s burst 100"                  every tenant's, unless overridden
//   HERALD_TENANT_QUOTAS="tenant-a=1000/s burst 2000, tenant-b=off"
//   HERALD_TENANT_QUOTAS_FILE=/etc/herald/quotas          the same entries, one a line, # comments
//
// A quota is `<rate>/s` (rate > 0, decimals allowed: 0.5/s is one every two seconds) with an
// optional `burst <n>` (an integer >= 1; default: one second's worth, at least 1); `off` means
// no quota for that tenant.

export interface Quota {
  /** Tokens refilled a second. */
  perSecond: number;
  /** Tokens the bucket holds when full: the most one tenant may send at once after a pause. */
  burst: number;
}

export interface QuotaConfig {
  /** Every tenant's quota unless overridden; null: no quota. */
  fallback: Quota | null;
  /** Overrides by tenant; a null entry exempts the tenant. */
  tenants: ReadonlyMap<string, Quota | null>;
}

const MAX_RATE = 1_000_000;
const MAX_BURST = 10_000_000;
const SPEC = /^(\d+(?:\.\d+)?)\/s(?:\s+burst\s+(\d+))?$/;

/** The quota that applies to `tenant`, or null when it has none. */
export function quotaOf(config: QuotaConfig, tenant: string): Quota | null {
  const own = config.tenants.get(tenant);
  return own === undefined ? config.fallback : own;
}

/** Whether any tenant has a quota: the accept path skips the check altogether when none does. */
export function quotasOn(config: QuotaConfig): boolean {
  return config.fallback !== null || [...config.tenants.values()].some((q) => q !== null);
}

/** `<rate>/s [burst <n>]` or `off`; `where` names the variable (and entry) in the error. */
export function parseQuota(raw: string, where: string): Quota | null {
  const text = raw.trim().replace(/\s+/g, " ");
  if (text.toLowerCase() === "off") return null;
  const m = SPEC.exec(text);
  if (!m) throw new ConfigError(`${where}: expected "<rate>/s", "<rate>/s burst <n>" or "off", got "${raw.trim()}"`);
  const perSecond = Number(m[1]);
  if (!(perSecond > 0 && perSecond <= MAX_RATE)) throw new ConfigError(`${where}: rate must be in (0, ${MAX_RATE}] per second, got ${m[1]}`);
  const burst = m[2] === undefined ? Math.max(1, Math.ceil(perSecond)) : Number(m[2]);
  if (!(Number.isSafeInteger(burst) && burst >= 1 && burst <= MAX_BURST)) throw new ConfigError(`${where}: burst must be an integer in [1, ${MAX_BURST}], got ${m[2]}`);
  return { perSecond, burst };
}

/**
 * Reads the quota variables. `tenants` are those with an API key: an override for any other is a
 * typo that would otherwise leave the intended tenant on the default, so it stops the start.
 */
export function loadQuotaConfig(env: Env, tenants: ReadonlySet<string>): QuotaConfig {
  const fallbackRaw = env.HERALD_TENANT_QUOTA;
  const fallback = fallbackRaw === undefined || fallbackRaw.trim() === "" ? null : parseQuota(fallbackRaw, "HERALD_TENANT_QUOTA");
  const overrides = new Map<string, Quota | null>();
  const sources: Array<[string, string, RegExp]> = [];
  if (env.HERALD_TENANT_QUOTAS) sources.push(["HERALD_TENANT_QUOTAS", env.HERALD_TENANT_QUOTAS, /[,\n]/]);
  if (env.HERALD_TENANT_QUOTAS_FILE) sources.push(["HERALD_TENANT_QUOTAS_FILE", fileText("HERALD_TENANT_QUOTAS_FILE", env.HERALD_TENANT_QUOTAS_FILE), /\n/]);
  for (const [name, text, separator] of sources) {
    for (const rawEntry of text.split(separator)) {
      const entry = rawEntry.replace(/#.*$/, "").trim();
      if (!entry) continue;
      const i = entry.indexOf("=");
      const tenant = entry.slice(0, i).trim();
      if (i <= 0 || !tenant) throw new ConfigError(`${name}: expected entries "<tenant>=<rate>/s [burst <n>]" or "<tenant>=off", got "${entry.slice(0, 60)}"`);
      if (!tenants.has(tenant)) throw new ConfigError(`${name}: tenant "${tenant.slice(0, 60)}" has no API key (HERALD_API_KEYS)`);
      if (overrides.has(tenant)) throw new ConfigError(`${name}: tenant "${tenant}" is given more than once`);
      overrides.set(tenant, parseQuota(entry.slice(i + 1), `${name}: ${tenant}`));
    }
  }
  return { fallback, tenants: overrides };
}
