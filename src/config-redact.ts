import type { Config } from "./config.js";

// The effective configuration as `herald config` shows it: plain JSON values,
// defaults filled in, and no secret. API keys show only their tenants, webhook
// secrets only theirs, URLs lose their password, and any other string under a
// name that says password, token, secret or private key is replaced, so a secret added to
// Config later is hidden before anyone remembers to list it here.

export const REDACTED = "REDACTED";

const secretName = /password|token|secret|privatekey/i;

/** `config` as JSON-ready values with every secret replaced. */
export function redactedConfig(config: Config): Record<string, unknown> {
  // Replacing the keys in a spread keeps them where Config has them, so the output reads in that order.
  return plain({
    ...config,
    databaseUrl: withoutPassword(config.databaseUrl),
    redisUrl: withoutPassword(config.redisUrl),
    apiKeys: { keys: config.apiKeys.size, tenants: [...new Set(config.apiKeys.values())].sort() },
  }) as Record<string, unknown>;
}

function plain(value: unknown, name = ""): unknown {
  if (value instanceof Map) {
    // A map of secrets (webhook signing secrets by tenant) keeps its keys; its values go below.
    return plain(Object.fromEntries(value), name);
  }
  if (Array.isArray(value)) return value.map((v) => plain(v, name));
  if (typeof value === "object" && value !== null) {
    // Entries of a secret map are secrets whatever their own name.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v, secretName.test(name) ? name : k)]));
  }
  if (typeof value === "string" && secretName.test(name)) return REDACTED;
  return value;
}

function withoutPassword(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = REDACTED;
    return url.toString();
  } catch {
    // Unparsable: it cannot be shown safely in part.
    return REDACTED;
  }
}

/** Dotted paths and values, one a line, values aligned: the text form of `herald config`. */
export function configLines(value: Record<string, unknown>): string[] {
  const rows: Array<[string, string]> = [];
  const walk = (v: unknown, path: string) => {
    if (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
      for (const [k, child] of Object.entries(v)) walk(child, path ? `${path}.${k}` : k);
    } else {
      rows.push([path, JSON.stringify(v)]);
    }
  };
  walk(value, "");
  const width = Math.max(...rows.map(([p]) => p.length));
  return rows.map(([p, v]) => `${p.padEnd(width)}  ${v}`);
}
