-- Retention and erasure (issue 16 item 7; store/purge.ts, store/erasure.ts, store/audit.ts).

-- The purge's scan: terminal notifications (SENT, DELIVERED, FAILED, DEAD_LETTERED, CANCELED)
-- by their last change. Only terminal rows are indexed, so the scan never walks the live ones,
-- and the purge's statement repeats this predicate literally so the planner can use the index.
CREATE INDEX notifications_retention ON notifications (updated_at) WHERE status IN (4, 5, 7, 8, 9);

-- Set when EraseRecipient scrubbed the row (store/erasure.ts): its user id, spec, labels and
-- texts no longer say whose it was. Receipts and redrives leave such a row alone. Nullable with
-- no default: adding it rewrites nothing.
ALTER TABLE notifications ADD COLUMN erased_at timestamptz;

-- Erasure and the purge delete a notification's outbox rows, published ones included (their
-- Dispatch carries the spec): the partial index covered only unpublished rows. Every row enters
-- a partial index as it is inserted (unpublished) anyway; the full one also keeps its entry when
-- the relay marks the row.
CREATE INDEX outbox_notification_all ON outbox (notification_id);
DROP INDEX outbox_notification;

-- What was done to people's data, by whom (audit.ts). Insert-only. The person is named by
-- subject_ref, an HMAC-SHA256 of tenant and user id under a deployment secret (herald_secrets
-- 'audit-subject'): whoever knows the user id and holds the secret can find the entry, but the
-- entry alone does not say who it was. counts is what the action did (notifications erased...).
CREATE TABLE audit_log (
  id           bigserial   PRIMARY KEY,
  tenant       text        NOT NULL,
  action       text        NOT NULL,             -- recipient.erase
  actor_key_id text        NOT NULL,             -- the API key's id (edge.ts CallInfo.keyId)
  request_id   text        NOT NULL,             -- the call's x-request-id
  subject_ref  text        NOT NULL,             -- hex HMAC-SHA256, see above
  counts       jsonb       NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
CREATE INDEX audit_log_subject ON audit_log (tenant, subject_ref);
