-- API keys kept in the database (issue 17 item 6; store/api-keys.ts, keys/key-table.ts): made,
-- listed and revoked with `herald keys`, picked up by every API instance without a restart
-- (NOTIFY herald_api_keys on each change, plus a periodic reload). HERALD_API_KEYS and its file
-- keep working beside them.
--
-- A key reads hk_<id>_<secret>. Only the id is stored in the clear: it is how the edge finds the
-- row, and how operators name the key. The secret is never stored, only the SHA-256 of the
-- whole key (32 bytes), compared in constant time.
CREATE TABLE api_keys (
  id           text        PRIMARY KEY,            -- 12 hex characters, the key's public part
  tenant       text        NOT NULL,
  secret_hash  bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
  name         text        NOT NULL DEFAULT '',    -- the operator's label: "billing service, 2027 rotation"
  scopes       text[]      NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['send', 'read', 'admin']),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz,                        -- NULL: never
  revoked_at   timestamptz,                        -- set once by `herald keys revoke`, never cleared
  last_used_at timestamptz                         -- written by the API at most once per reload interval
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);
