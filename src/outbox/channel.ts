import type pg from "pg";

/**
 * The PostgreSQL NOTIFY channel on which outbox writers wake the relay. Writers
 * NOTIFY inside the transaction that inserts outbox rows; PostgreSQL delivers it
 * on commit, once per transaction, so the relay never wakes for uncommitted rows.
 */
export const OUTBOX_CHANNEL = "herald_outbox";

/**
 * Subscribes `client`'s session to outbox commits: `onCommit` runs for each one notified.
 * LISTEN before the first read of the outbox: a row committed in between is then either read
 * or notified, never missed.
 */
export async function listenForOutbox(client: pg.ClientBase, onCommit: () => void): Promise<void> {
  await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
  client.on("notification", (msg: pg.Notification) => {
    if (msg.channel === OUTBOX_CHANNEL) onCommit();
  });
}
