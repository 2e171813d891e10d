-- Secrets every instance of a deployment shares and none configures: made by the first
-- process that needs one (src/store/cursor-key.ts), then read by all.
CREATE TABLE herald_secrets (
  name       text PRIMARY KEY,
  value      bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
