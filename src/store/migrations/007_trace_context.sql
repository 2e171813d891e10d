-- The W3C traceparent of the accept span (src/tracing/), stored with the notification so every
-- record written for it later (the scheduler's release, the workers' outcomes, a retry, a
-- redrive) continues the same trace. NULL when tracing was off at accept. Nullable with no
-- default: adding it rewrites nothing.
ALTER TABLE notifications ADD COLUMN traceparent text;
