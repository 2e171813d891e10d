-- Delivery: claims with leases, versioned templates, dead letters.

-- While a notification is SENDING, the claim is good until lease_until. A
-- worker that dies mid-send leaves the row SENDING; once the lease passes,
-- the redelivered Kafka record (or the scheduler's sweep) may claim it again.
ALTER TABLE notifications ADD COLUMN lease_until timestamptz;
CREATE INDEX notifications_lease_expired ON notifications (lease_until) WHERE status = 3;

-- One row per template version. The body is the herald.v1.Template message
-- (content, overrides, description, required variables) as protobuf.
CREATE TABLE templates (
  tenant      text        NOT NULL,
  template_id text        NOT NULL,
  version     integer     NOT NULL,
  body        bytea       NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (tenant, template_id, version)
);

-- One row per notification that ended FAILED or DEAD_LETTERED. Redrive keeps
-- the row (redriven_at set) so the history of what went wrong stays; dying
-- again updates it in place.
CREATE TABLE dead_letters (
  notification_id uuid        PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
  tenant          text        NOT NULL,
  channel         smallint    NOT NULL,
  status          smallint    NOT NULL,
  last_error      text        NOT NULL,
  attempts        integer     NOT NULL,
  created_at      timestamptz NOT NULL,
  redrive_count   integer     NOT NULL DEFAULT 0,
  redriven_at     timestamptz
);
CREATE INDEX dead_letters_open ON dead_letters (tenant, created_at DESC, notification_id) WHERE redriven_at IS NULL;
