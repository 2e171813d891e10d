-- Recipient profiles (issue 16, store/recipients.ts): a person of a tenant, with the address to
-- reach them on each channel, their time zone and locale, and the caller's own data. Notify fans
-- out from it; preferences and quiet hours hang off it. '' (or an empty array) means "none", so
-- a whole-profile PUT can clear a field without NULL handling on every read.
CREATE TABLE recipients (
  tenant      text        NOT NULL,
  user_id     text        COLLATE "C" NOT NULL,
  email       text        NOT NULL DEFAULT '',
  phone       text        NOT NULL DEFAULT '',
  push_tokens text[]      NOT NULL DEFAULT '{}',
  webhook_url text        NOT NULL DEFAULT '',
  time_zone   text        NOT NULL DEFAULT '',   -- IANA name
  locale      text        NOT NULL DEFAULT '',   -- BCP 47, canonicalized
  data        jsonb       NOT NULL DEFAULT '{}', -- string to string
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  -- user_id in byte order (COLLATE "C"): the page order of ListRecipients, whatever the
  -- database's collation, so a page token's "after" is exact.
  PRIMARY KEY (tenant, user_id)
);
