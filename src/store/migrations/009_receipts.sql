-- Receipts that arrived before the SENT they follow was stored (store/receipts.ts).
--
-- A provider may call back within milliseconds of accepting a message, before the worker's
-- outcome transaction has committed the SENT and the provider's message id. Such a receipt is
-- kept here, under the notification it names and the provider message id it is about, and
-- applied by the transaction that stores that SENT (store/deliveries.ts); it is deleted then.
-- One row per (notification, provider, message id, target status): a repeated callback while
-- it waits adds nothing.
CREATE TABLE receipts (
  notification_id     uuid        NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
  provider            text        NOT NULL,             -- twilio, sendgrid
  provider_message_id text        NOT NULL,
  status              smallint    NOT NULL,             -- herald.v1.Status it moves the notification to
  detail              text        NOT NULL DEFAULT '',
  received_at         timestamptz NOT NULL,
  PRIMARY KEY (notification_id, provider, provider_message_id, status)
);
