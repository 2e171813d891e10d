import { createHash, randomBytes } from "node:crypto";

// The keys `herald keys create` makes (stored in PostgreSQL, store/api-keys.ts): hk_<id>_<secret>.
// The id is public (lists, logs, audit entries name it) and finds the key's row without a scan;
// the secret is 32 random bytes, so the key's SHA-256 is all that needs keeping. The hk_ prefix
// makes a leaked key recognisable to secret scanners and to whoever finds it in a log.

/** What a key may do (server/method-scopes.ts maps every RPC to one). */
export const scopeNames = ["send", "read", "admin"] as const;
export type Scope = (typeof scopeNames)[number];

/** Keys from HERALD_API_KEYS and its file: they have always had every scope, and keep them. */
export const allScopes: ReadonlySet<Scope> = new Set(scopeNames);

const KEY = /^hk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

/** A new key, with its id and the SHA-256 stored in its place. */
export interface NewKey {
  id: string;
  key: string;
  hash: Buffer;
}

export function generateKey(random: (n: number) => Buffer = randomBytes): NewKey {
  const id = random(6).toString("hex");
  const key = `hk_${id}_${random(32).toString("base64url")}`;
  return { id, key, hash: keyDigest(key) };
}

/** The key's id if it has the hk_ form, else undefined (an env key, or not a key at all). */
export function keyIdOf(key: string): string | undefined {
  return KEY.exec(key)?.[1];
}

/** SHA-256 of the whole key: what api_keys.secret_hash holds. */
export function keyDigest(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** `send,read`: the scopes named, each once; throws naming the bad one. */
export function parseScopes(text: string): Scope[] {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new Error(`expected one or more of ${scopeNames.join(", ")}, comma-separated`);
  for (const name of names) {
    if (!(scopeNames as readonly string[]).includes(name)) throw new Error(`unknown scope "${name}": expected ${scopeNames.join(", ")}`);
  }
  // In the table's order, whatever order they were given in.
  return scopeNames.filter((s) => names.includes(s));
}
