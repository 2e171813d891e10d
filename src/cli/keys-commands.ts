import { parseArgs } from "node:util";
import { databaseUrl } from "../config.js";
import { TENANT } from "../domain/api-keys.js";
import { generateKey, parseScopes, type Scope } from "../domain/key-format.js";
import { createPool, ensureDatabase } from "../store/db.js";
import { migrate } from "../store/migrate.js";
import { isUnavailable } from "../store/errors.js";
import { insertApiKey, listApiKeys, revokeApiKey, type StoredKeyRow } from "../store/api-keys.js";
import { systemClock, type Clock } from "../clock.js";
import { durationHelp, parseDuration } from "./schedule-time.js";
import { UsageError } from "./usage-error.js";

// `herald keys create|list|revoke`: the API keys stored in PostgreSQL (store/api-keys.ts). An
// operator's tool that talks to the database itself (DATABASE_URL), not to the API: it is how
// the first admin key comes to be, and a key's secret then never crosses the API. Every running
// server picks a change up within a moment (NOTIFY), without a restart.

export const keysUsage = `  herald keys create --tenant T [--name N] [--scopes send,read,admin] [--expires ISO | --ttl 90d] [--json]
                                 prints a new API key once (default scopes: send,read)
  herald keys list [--tenant T] [--json]   ids, tenants, scopes, times and state; never a secret
  herald keys revoke KEY_ID      refused by every server from then on (DATABASE_URL for all three)
`;

export interface KeysIo {
  out: { write(chunk: string): unknown };
  err: { write(chunk: string): unknown };
  /** @defaultValue the system's */
  clock?: Clock;
}

const options = {
  tenant: { type: "string" },
  name: { type: "string" },
  scopes: { type: "string" },
  expires: { type: "string" },
  ttl: { type: "string" },
  json: { type: "boolean", default: false },
} as const;

/** A key made for an application: it sends and reads, and administers nothing until asked to. */
const defaultScopes: Scope[] = ["send", "read"];
const NAME_MAX = 200;

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof options; allowPositionals: true; strict: true }>>["values"];

/** Runs `herald keys ...`; resolves to the process's exit code. */
export async function runKeysCommand(args: string[], env: NodeJS.ProcessEnv, io: KeysIo = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "create" && sub !== "list" && sub !== "revoke") throw new UsageError(`usage:\n${keysUsage}`);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const clock = io.clock ?? systemClock;
  // Checked before connecting, so a typo says what is wrong rather than what the database refused.
  const run = plan(sub, values, positionals, clock);

  const url = databaseUrl(env);
  const pool = createPool({ url, max: 1, applicationName: "herald keys" });
  try {
    // As the roles do: keys can be made before the first server ever starts.
    await ensureDatabase(url);
    await migrate(pool);
    return await run(pool, io);
  } catch (err) {
    if (!isUnavailable(err)) throw err;
    io.err.write(`herald: database unavailable (${(err as Error).message}); nothing was changed\n`);
    return 1;
  } finally {
    await pool.end();
  }
}

type Step = (pool: ReturnType<typeof createPool>, io: KeysIo) => Promise<number>;

function plan(sub: "create" | "list" | "revoke", v: Values, positionals: string[], clock: Clock): Step {
  if (sub === "revoke") {
    if (positionals.length !== 1) throw new UsageError("usage: herald keys revoke KEY_ID");
    for (const flag of ["tenant", "name", "scopes", "expires", "ttl"] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} goes with create, not revoke`);
    }
    const id = positionals[0]!;
    return async (pool, io) => {
      const res = await revokeApiKey(pool, id);
      if (!res) {
        io.err.write(`herald: no API key ${JSON.stringify(id)} (herald keys list shows them)\n`);
        return 1;
      }
      const at = res.key.revokedAt!.toISOString();
      if (v.json) io.out.write(`${JSON.stringify({ ...plain(res.key, clock), newlyRevoked: res.revoked })}\n`);
      io.err.write(res.revoked ? `revoked ${id} (tenant ${res.key.tenant}) at ${at}: every server refuses it within moments\n` : `${id} was already revoked, at ${at}\n`);
      return 0;
    };
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n${keysUsage}`);
  if (v.tenant !== undefined && !TENANT.test(v.tenant)) throw new UsageError(`--tenant must match ${TENANT}`);
  if (sub === "list") {
    for (const flag of ["name", "scopes", "expires", "ttl"] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} goes with create, not list`);
    }
    return async (pool, io) => {
      const keys = await listApiKeys(pool, v.tenant);
      if (v.json) io.out.write(`${JSON.stringify(keys.map((k) => plain(k, clock)))}\n`);
      else if (keys.length === 0) io.err.write("no stored API keys\n");
      else io.out.write(formatKeys(keys, clock.now()));
      return 0;
    };
  }

  if (v.tenant === undefined) throw new UsageError("--tenant is required");
  const tenant = v.tenant;
  const name = v.name ?? "";
  if (name.length > NAME_MAX || /[\p{Cc}]/u.test(name)) throw new UsageError(`--name: at most ${NAME_MAX} characters, no control characters`);
  let scopes = defaultScopes;
  if (v.scopes !== undefined) {
    try {
      scopes = parseScopes(v.scopes);
    } catch (err) {
      throw new UsageError(`--scopes: ${(err as Error).message}`);
    }
  }
  const expiresAt = expiry(v, clock);
  return async (pool, io) => {
    // 48 random bits of id: a clash is not expected, but it would be a refused insert, so draw again.
    for (;;) {
      const made = generateKey();
      const row = await insertApiKey(pool, { id: made.id, tenant, hash: made.hash, name, scopes, expiresAt });
      if (!row) continue;
      if (v.json) {
        io.out.write(`${JSON.stringify({ ...plain(row, clock), key: made.key })}\n`);
      } else {
        io.out.write(`${made.key}\n`);
        const until = row.expiresAt ? `until ${row.expiresAt.toISOString()}` : "no expiry";
        io.err.write(`created API key ${row.id} for tenant ${tenant} (scopes ${scopes.join(",")}; ${until}).\nThe key above is shown once: store it now. Herald keeps only its SHA-256.\n`);
      }
      return 0;
    }
  };
}

/** --expires (an instant to come) or --ttl (a duration from now); neither: no expiry. */
function expiry(v: Values, clock: Clock): Date | null {
  if (v.expires !== undefined && v.ttl !== undefined) throw new UsageError("--expires and --ttl: give one, not both");
  if (v.ttl !== undefined) {
    const ms = parseDuration(v.ttl);
    if (ms === undefined) throw new UsageError(`--ttl expects ${durationHelp}, got "${v.ttl}"`);
    return new Date(clock.now() + ms);
  }
  if (v.expires === undefined) return null;
  // An instant with its zone, so the same command means the same moment on every machine.
  const at = /(?:Z|[+-]\d\d:\d\d)$/i.test(v.expires) ? Date.parse(v.expires) : NaN;
  if (Number.isNaN(at)) throw new UsageError(`--expires expects an ISO 8601 instant with a zone, such as 2027-01-01T00:00:00Z; got "${v.expires}"`);
  if (at <= clock.now()) throw new UsageError("--expires must be in the future");
  return new Date(at);
}

export type KeyState = "active" | "expired" | "revoked";

export function keyState(k: Pick<StoredKeyRow, "expiresAt" | "revokedAt">, now: number): KeyState {
  if (k.revokedAt) return "revoked";
  if (k.expiresAt && k.expiresAt.getTime() <= now) return "expired";
  return "active";
}

/** A stored key as --json prints it: no hash (the store never hands it here), times as ISO strings. */
function plain(k: StoredKeyRow, clock: Clock) {
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return {
    id: k.id,
    tenant: k.tenant,
    name: k.name,
    scopes: k.scopes,
    createdAt: k.createdAt.toISOString(),
    expiresAt: iso(k.expiresAt),
    revokedAt: iso(k.revokedAt),
    lastUsedAt: iso(k.lastUsedAt),
    state: keyState(k, clock.now()),
  };
}

/** A fixed-width table, one key a line. */
export function formatKeys(keys: readonly StoredKeyRow[], now: number): string {
  const t = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : "-");
  const rows = keys.map((k) => [k.id, k.tenant, k.name || "-", k.scopes.join(","), t(k.createdAt), t(k.expiresAt), t(k.revokedAt), t(k.lastUsedAt), keyState(k, now)]);
  const header = ["ID", "TENANT", "NAME", "SCOPES", "CREATED", "EXPIRES", "REVOKED", "LAST USED", "STATE"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}
