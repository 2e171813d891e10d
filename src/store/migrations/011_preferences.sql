-- Recipient preferences and tenant categories (issue 16, store/preferences.ts).
--
-- A recipient's preferences hang off their profile and go with it. Channels are herald.v1.Channel
-- numbers; categories are the tenant's own names. '' quiet hours mean none.
CREATE TABLE recipient_preferences (
  tenant             text        NOT NULL,
  user_id            text        COLLATE "C" NOT NULL,
  opted_out_channels smallint[]  NOT NULL DEFAULT '{}',
  -- [{"category": "marketing", "opted_out_channels": [2], "unsubscribed": false}, ...]
  categories         jsonb       NOT NULL DEFAULT '[]',
  quiet_start        text        NOT NULL DEFAULT '',  -- HH:MM in the profile's time zone
  quiet_end          text        NOT NULL DEFAULT '',
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, user_id),
  FOREIGN KEY (tenant, user_id) REFERENCES recipients (tenant, user_id) ON DELETE CASCADE
);

-- A tenant's setting for one category: required (no opting out) and the channels recipients
-- are opted out of until they choose otherwise.
CREATE TABLE notification_categories (
  tenant                     text        NOT NULL,
  category                   text        COLLATE "C" NOT NULL,
  required                   boolean     NOT NULL DEFAULT false,
  default_opted_out_channels smallint[]  NOT NULL DEFAULT '{}',
  description                text        NOT NULL DEFAULT '',
  updated_at                 timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, category)
);
