import type pg from "pg";
import type { Scope } from "../domain/key-format.js";

// The api_keys table (migration 016): written by `herald keys` (cli/keys-commands.ts), read
// whole by every API instance (keys/key-table.ts). Each change NOTIFYs KEYS_CHANNEL in its own
// statement, so PostgreSQL tells the listeners at commit and never about a change that did not
// commit. The secret is never here: only its SHA-256.

/** The NOTIFY channel on which key changes wake the API instances' key tables. */
export const KEYS_CHANNEL = "herald_api_keys";

type Queryable = Pick<pg.ClientBase, "query">;

export interface StoredKeyRow {
  id: string;
  tenant: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/** A row as the API checks it: with the hash, which nothing else reads. */
export interface StoredKeyWithHash extends StoredKeyRow {
  hash: Buffer;
}

interface Row {
  id: string;
  tenant: string;
  name: string;
  scopes: Scope[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const COLUMNS = "id, tenant, name, scopes, created_at, expires_at, revoked_at, last_used_at";

function toKey(r: Row): StoredKeyRow {
  return {
    id: r.id,
    tenant: r.tenant,
    name: r.name,
    scopes: r.scopes,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

export interface NewKeyRow {
  id: string;
  tenant: string;
  hash: Buffer;
  name: string;
  scopes: readonly Scope[];
  expiresAt: Date | null;
}

/** Stores a new key; undefined when its id is taken (48 random bits: the caller draws another). */
export async function insertApiKey(db: Queryable, key: NewKeyRow): Promise<StoredKeyRow | undefined> {
  const res = await db.query<Row>(
    `WITH k AS (
       INSERT INTO api_keys (id, tenant, secret_hash, name, scopes, expires_at)
       VALUES ($1, $2, $3, $4, $5::text[], $6)
       ON CONFLICT (id) DO NOTHING
       RETURNING ${COLUMNS}
     )
     SELECT k.*, pg_notify('${KEYS_CHANNEL}', k.id) FROM k`,
    [key.id, key.tenant, key.hash, key.name, key.scopes, key.expiresAt],
  );
  return res.rows[0] ? toKey(res.rows[0]) : undefined;
}

/** Every key, or a tenant's, oldest first; never their hashes. */
export async function listApiKeys(db: Queryable, tenant?: string): Promise<StoredKeyRow[]> {
  const res = await db.query<Row>(
    `SELECT ${COLUMNS} FROM api_keys WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id`,
    [tenant ?? null],
  );
  return res.rows.map(toKey);
}

/**
 * Revokes a key: the answer says whether this call did it (`revoked`) or found it done, and keeps
 * the first revocation's time. Undefined when there is no such key.
 */
export async function revokeApiKey(db: Queryable, id: string): Promise<{ key: StoredKeyRow; revoked: boolean } | undefined> {
  // The UPDATE's RETURNING sees the new row; the old revoked_at comes from a subquery's snapshot.
  const res = await db.query<Row & { was_revoked: boolean }>(
    `WITH before AS (SELECT revoked_at IS NOT NULL AS was_revoked FROM api_keys WHERE id = $1),
     k AS (
       UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}
     )
     SELECT k.*, before.was_revoked, pg_notify('${KEYS_CHANNEL}', k.id) FROM k, before`,
    [id],
  );
  const row = res.rows[0];
  return row ? { key: toKey(row), revoked: !row.was_revoked } : undefined;
}

/** Every key with its hash: what an API instance holds in memory. */
export async function loadApiKeys(db: Queryable): Promise<StoredKeyWithHash[]> {
  const res = await db.query<Row & { secret_hash: Buffer }>(`SELECT ${COLUMNS}, secret_hash FROM api_keys`);
  return res.rows.map((r) => ({ ...toKey(r), hash: r.secret_hash }));
}

/** Marks keys as used now (batched by the key table, so not a write per call). */
export async function touchApiKeys(db: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query("UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::text[])", [ids]);
}
