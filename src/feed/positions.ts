import { fromBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { StatusEventSchema } from "../../gen/herald/v1/notification_pb.js";
import type { KafkaRecord } from "../kafka/kafka.js";
import { STATUS_TOPIC } from "../kafka/topics.js";
import { FEED_POSITION_HEADER } from "./feed-event.js";

// Feed positions are assigned by the relay leader, on its session, just before it publishes
// herald.status records (see migration 003): so positions reach Kafka in increasing order,
// and a republished record carries the position of its first copy.

/** One herald.status outbox row the relay is about to publish, identified by its event. */
export interface FeedAssignInput {
  notificationId: string;
  sequence: number;
}

/**
 * Gives each event a feed position (keeping the one it already has: a republished record
 * carries the same position as its first copy) and returns the positions in input order.
 * Must run on the relay leader's session: positions are dense and increasing only because
 * one writer at a time bumps `status_feed.head`, in the order given.
 * An event with no status_events row (cannot happen for rows written by writeTransitions)
 * gets undefined and is published without a position.
 */
export async function assignFeedPositions(
  client: pg.ClientBase,
  inputs: readonly FeedAssignInput[],
): Promise<(number | undefined)[]> {
  if (inputs.length === 0) return [];
  // One statement, so the head bump and the log rows commit together: a reader that sees
  // head = N finds every position up to N in status_feed_log.
  const { rows } = await client.query<{ ord: string; position: string }>(
    `WITH input AS (
       SELECT e.position AS event_position, e.tenant, e.user_id, e.notification_id, i.ord, f.position AS known
       FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS i(notification_id, sequence, ord)
       JOIN status_events e ON e.notification_id = i.notification_id AND e.sequence = i.sequence
       LEFT JOIN status_feed_log f ON f.event_position = e.position),
     fresh AS (
       SELECT *, row_number() OVER (ORDER BY ord) AS n, count(*) OVER () AS total FROM input WHERE known IS NULL),
     head AS (
       UPDATE status_feed SET head = head + (SELECT count(*) FROM fresh)
       WHERE id = 1 AND EXISTS (SELECT 1 FROM fresh) RETURNING head),
     logged AS (
       INSERT INTO status_feed_log (position, event_position, tenant, user_id, notification_id)
       SELECT (SELECT head FROM head) - total + n, event_position, tenant, user_id, notification_id FROM fresh
       RETURNING position, event_position)
     SELECT i.ord, coalesce(i.known, l.position) AS position
     FROM input i LEFT JOIN logged l ON l.event_position = i.event_position`,
    [inputs.map((i) => i.notificationId), inputs.map((i) => i.sequence)],
  );
  const out: (number | undefined)[] = new Array<number | undefined>(inputs.length).fill(undefined);
  for (const row of rows) out[Number(row.ord) - 1] = Number(row.position);
  return out;
}

/**
 * The batch's herald.status records given their feed position header and put in position
 * order (a row assigned by an earlier, unmarked batch can have a lower position than a row
 * with a lower outbox id), after the other topics' records, which keep outbox id order.
 */
export async function withFeedPositions(client: pg.ClientBase, records: readonly KafkaRecord[]): Promise<KafkaRecord[]> {
  const status = records.filter((r) => r.topic === STATUS_TOPIC);
  if (status.length === 0) return [...records];
  const positions = await assignFeedPositions(
    client,
    status.map((r) => {
      const event = fromBinary(StatusEventSchema, r.value);
      return { notificationId: event.notificationId, sequence: event.sequence };
    }),
  );
  const positioned = status.map((record, i) => ({ record, position: positions[i] ?? Number.MAX_SAFE_INTEGER }));
  for (const { record, position } of positioned) {
    if (position !== Number.MAX_SAFE_INTEGER) record.headers = { ...record.headers, [FEED_POSITION_HEADER]: String(position) };
  }
  positioned.sort((a, b) => a.position - b.position); // stable: unpositioned keep id order, last
  return [...records.filter((r) => r.topic !== STATUS_TOPIC), ...positioned.map((p) => p.record)];
}
