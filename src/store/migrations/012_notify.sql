-- Notify (issue 16): one request for one recipient, fanned out into a notification per channel.
--
-- Every notification of a Notify carries its request's id. The request itself is kept: it is the
-- arbiter of Notify's idempotency key (a repeat returns the first answer, whatever the profile and
-- preferences say by then), and it records what was skipped and why, which no notification row
-- can (a skipped channel has none).
ALTER TABLE notifications ADD COLUMN notify_id uuid;
CREATE INDEX notifications_notify ON notifications (notify_id) WHERE notify_id IS NOT NULL;

CREATE TABLE notify_requests (
  id                       uuid        PRIMARY KEY,   -- the notify_id its notifications carry
  tenant                   text        NOT NULL,
  user_id                  text        NOT NULL,
  idempotency_key          text,
  -- The key it was made with, once released after the idempotency window (as for notifications).
  released_idempotency_key text,
  request_hash             bytea,                     -- sha256 of the request, to refuse a reused key
  -- [{"channel": 2, "reason": 2, "detail": "..."}]: the answer's skipped list, as first given.
  skipped                  jsonb       NOT NULL DEFAULT '[]',
  created_at               timestamptz NOT NULL
);
-- Notify's keys live apart from Create's: the same key may be used for one of each.
CREATE UNIQUE INDEX notify_requests_idempotency
  ON notify_requests (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX notify_requests_created ON notify_requests (created_at);
