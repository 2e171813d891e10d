-- Delivery truth (receipts, suppressions, failover).
--
-- Which configured provider accepted a notification, and which provider each status event
-- concerns: with failover a channel has several, and an operator (and a receipt) must know which
-- one holds the message. '' before any provider was involved. A constant default rewrites nothing.
ALTER TABLE notifications ADD COLUMN provider text NOT NULL DEFAULT '';
ALTER TABLE status_events ADD COLUMN provider text NOT NULL DEFAULT '';

-- Addresses a tenant must not send to any more: a hard bounce or a complaint (email), or an
-- operator's entry. A send to a suppressed address fails at once with the reason; removing the
-- row (API, CLI) lets sends through again. One row per (tenant, channel, address); the address
-- is stored normalized (lower-cased email) so a differently-cased resend still matches.
CREATE TABLE suppressions (
  tenant          text        NOT NULL,
  channel         smallint    NOT NULL,             -- herald.v1.Channel
  address         text        NOT NULL,
  reason          text        NOT NULL,             -- hard_bounce, complaint, manual
  detail          text        NOT NULL DEFAULT '',  -- the provider's words (bounce code, feedback type)
  notification_id uuid,                             -- the notification whose receipt caused it, if any
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, channel, address)
);
