import { createHmac, randomBytes } from "node:crypto";
import type pg from "pg";

// The audit log (migration 014): one row per action on people's data, written in the action's own
// transaction, so an erasure and its record commit together or not at all. The person is named by
// a keyed hash, never by their user id: the entry proves that a given person was erased to anyone
// who knows the user id and the deployment's key, and tells anyone else nothing. The key is a
// herald_secrets row, made by the first erasure, as the watch cursors' key is (cursor-key.ts).

const SECRET_NAME = "audit-subject";

type Queryable = Pick<pg.ClientBase, "query">;

/** The deployment's key for subject references; made on first use. */
export async function auditSubjectKey(db: Queryable): Promise<Buffer> {
  // Concurrent first uses: one insert wins; the other waits for its commit and reads its key.
  await db.query("INSERT INTO herald_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [SECRET_NAME, randomBytes(32)]);
  const found = await db.query<{ value: Buffer }>("SELECT value FROM herald_secrets WHERE name = $1", [SECRET_NAME]);
  return found.rows[0]!.value;
}

/** hex HMAC-SHA256 of tenant and user id (NUL-separated: a tenant has no NUL) under `key`. */
export function subjectRef(key: Buffer, tenant: string, userId: string): string {
  return createHmac("sha256", key).update(`${tenant}\0${userId}`).digest("hex");
}

export interface AuditEntry {
  tenant: string;
  /** e.g. recipient.erase */
  action: string;
  /** The caller's API key id and request id. */
  actor: { keyId: string; requestId: string };
  subjectRef: string;
  counts: Record<string, number | boolean>;
}

/** Appends one entry in the caller's transaction; returns its id. */
export async function writeAudit(db: Queryable, e: AuditEntry): Promise<string> {
  const result = await db.query<{ id: string }>(
    `INSERT INTO audit_log (tenant, action, actor_key_id, request_id, subject_ref, counts)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id::text`,
    [e.tenant, e.action, e.actor.keyId, e.actor.requestId, e.subjectRef, JSON.stringify(e.counts)],
  );
  return result.rows[0]!.id;
}
