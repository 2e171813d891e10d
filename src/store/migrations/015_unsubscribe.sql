-- One-click unsubscribes (RFC 8058; issue 16 item 6, store/unsubscribes.ts).
--
-- A row is a recipient's click on the List-Unsubscribe link of a mail of a category: from then on
-- they are unsubscribed from it. Read as part of their preferences wherever those are read
-- (GetPreferences, Notify, the workers before each send of a category), and kept apart from
-- recipient_preferences on purpose: a click needs no profile (Create takes any user id), it
-- outlives DeleteRecipient (the person asked to stop, whatever the tenant's records say), and it
-- records when and from which message. SetPreferences, which replaces a recipient's preferences
-- whole, deletes them (its caller read them as `unsubscribed` and decides anew); EraseRecipient
-- deletes them with the rest of the person.
CREATE TABLE unsubscribes (
  tenant          text        NOT NULL,
  user_id         text        COLLATE "C" NOT NULL,
  category        text        COLLATE "C" NOT NULL,
  -- The notification whose mail carried the link (not a foreign key: retention deletes it).
  notification_id uuid        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, user_id, category)
);
