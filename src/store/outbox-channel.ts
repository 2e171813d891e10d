/**
 * The PostgreSQL NOTIFY channel on which outbox writers wake the relay. Writers
 * NOTIFY inside the transaction that inserts outbox rows; PostgreSQL delivers it
 * on commit, once per transaction, so the relay never wakes for uncommitted rows.
 */
export const OUTBOX_CHANNEL = "herald_outbox";
