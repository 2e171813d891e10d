import type { StatusEvent } from "../../gen/herald/v1/notification_pb.js";

/** One status event at its place in the status feed, as API instances fan it out. */
export interface FeedEvent {
  /** Dense, increasing across every tenant; the resume point a cursor encodes. */
  position: number;
  tenant: string;
  event: StatusEvent;
}

/** The Kafka header carrying a herald.status record's feed position (decimal). */
export const FEED_POSITION_HEADER = "feed-position";
