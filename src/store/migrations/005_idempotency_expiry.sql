-- Idempotency keys expire (HERALD_IDEMPOTENCY_TTL_MS, accept.ts): a key older than the window
-- is released by moving it here, out of the unique index on (tenant, idempotency_key), so the
-- same key can create a new notification while the old one still shows the key it was created
-- with. Nullable with no default: adding it rewrites nothing.
ALTER TABLE notifications ADD COLUMN released_idempotency_key text;
