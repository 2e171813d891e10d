-- The system of record for the accept path. Every write that changes a
-- notification's status also appends a status_events row and, when something
-- must reach Kafka, an outbox row, in the same transaction.

CREATE TABLE notifications (
  id                  uuid        PRIMARY KEY,          -- UUIDv7: time-ordered, index friendly
  tenant              text        NOT NULL,
  channel             smallint    NOT NULL,             -- herald.v1.Channel
  user_id             text        NOT NULL,
  status              smallint    NOT NULL,             -- herald.v1.Status
  spec                bytea       NOT NULL,             -- herald.v1.NotificationSpec as accepted (protobuf)
  priority            smallint    NOT NULL DEFAULT 0,
  labels              jsonb       NOT NULL DEFAULT '{}',
  idempotency_key     text,
  request_hash        bytea,                            -- sha256 of the request, to refuse a reused key
  correlation_id      text        NOT NULL,
  local_time          jsonb,                            -- {"dateTime","timeZone"} when scheduled by local time
  deliver_at          timestamptz NOT NULL,
  attempts            integer     NOT NULL DEFAULT 0,
  max_attempts        integer     NOT NULL DEFAULT 4,
  next_attempt_at     timestamptz,
  last_error          text        NOT NULL DEFAULT '',
  provider_message_id text        NOT NULL DEFAULT '',
  last_sequence       integer     NOT NULL,             -- sequence of the newest status_events row
  created_at          timestamptz NOT NULL,
  updated_at          timestamptz NOT NULL
);

-- One notification per (tenant, key): the arbiter of idempotent Create/Schedule.
CREATE UNIQUE INDEX notifications_idempotency
  ON notifications (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The scheduler's scans: only rows that are waiting are indexed.
CREATE INDEX notifications_scheduled_due ON notifications (deliver_at) WHERE status = 1;
CREATE INDEX notifications_retry_due ON notifications (next_attempt_at) WHERE status = 6;
-- Recipient and tenant listings (snapshots, dashboards).
CREATE INDEX notifications_tenant_user ON notifications (tenant, user_id, created_at);
CREATE INDEX notifications_tenant_created ON notifications (tenant, created_at);

CREATE TABLE status_events (
  position        bigserial   PRIMARY KEY,
  notification_id uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
  sequence        integer     NOT NULL,
  tenant          text        NOT NULL,
  user_id         text        NOT NULL,
  channel         smallint    NOT NULL,
  status          smallint    NOT NULL,
  attempt         integer     NOT NULL,
  detail          text        NOT NULL DEFAULT '',
  created_at      timestamptz NOT NULL,
  UNIQUE (notification_id, sequence)
);

-- Transactional outbox: rows committed here are published to Kafka by the
-- relay, then marked. Topic is the logical name (herald.email, herald.status);
-- the relay adds the configured prefix.
CREATE TABLE outbox (
  id              bigserial   PRIMARY KEY,
  topic           text        NOT NULL,
  key             text        NOT NULL,
  value           bytea       NOT NULL,
  headers         jsonb       NOT NULL DEFAULT '{}',
  notification_id uuid,
  created_at      timestamptz NOT NULL DEFAULT now(),
  published_at    timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_notification ON outbox (notification_id) WHERE published_at IS NULL;
