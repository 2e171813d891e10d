import { withoutLane } from "../kafka/topics.js";
import type { RecordSink } from "./publish.js";

// Priority lanes turned off (HERALD_PRIORITY_LANES=off): the outbox still names the high lane's
// topic for a PRIORITY_HIGH Dispatch (records are built the same whatever the setting), and the
// relay publishes it on the channel's main topic instead, behind whatever is queued there, as
// before lanes existed. The switch lives here, in the one place every record passes, so turning
// it on or off needs no change to rows already in the outbox.

/** `sink` with every high-lane record sent to its channel's main topic. */
export function singleLane(sink: RecordSink): RecordSink {
  return {
    sendBatch(records) {
      return sink.sendBatch(
        records.map((r) => {
          const topic = withoutLane(r.topic);
          return topic === r.topic ? r : { ...r, topic };
        }),
      );
    },
  };
}
