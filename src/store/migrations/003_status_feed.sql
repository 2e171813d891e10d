-- The status feed: one total order over every status event, for WatchStatus cursors.
--
-- status_events.position is drawn at insert but becomes visible at commit, out of order, so it
-- cannot be a resume point (a reader past position 10 could later see 9 appear). The feed
-- position is assigned instead by the outbox relay leader (one at a time, under its advisory
-- lock) in the same statement that bumps status_feed.head, just before it publishes the
-- herald.status records; every position is committed before any record carrying it reaches
-- Kafka, and positions are dense (no holes), so a reader that sees position N knows every
-- position below N is already readable here.

CREATE TABLE status_feed (
  id   smallint PRIMARY KEY CHECK (id = 1),
  head bigint   NOT NULL                     -- the highest position assigned so far
);
INSERT INTO status_feed (id, head) VALUES (1, 0);

-- One row per status event that has a position. Insert-only; the event itself stays in
-- status_events. A republished record (relay crash between publish and mark) finds its
-- event here and keeps its position, so duplicates in Kafka carry the same position.
CREATE TABLE status_feed_log (
  position        bigint PRIMARY KEY,
  event_position  bigint NOT NULL UNIQUE REFERENCES status_events (position) ON DELETE CASCADE,
  tenant          text   NOT NULL,
  user_id         text   NOT NULL,
  notification_id uuid   NOT NULL
);
-- Resume reads by selector: the tenant, one recipient, one notification.
CREATE INDEX status_feed_log_tenant ON status_feed_log (tenant, position);
CREATE INDEX status_feed_log_user ON status_feed_log (tenant, user_id, position);
CREATE INDEX status_feed_log_notification ON status_feed_log (notification_id, position);
