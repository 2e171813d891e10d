import { describe, expect, it } from "vitest";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { unclaimed } from "../../src/store/deliveries.js";

// What a claim that did not take its row tells the worker, from the row read after the UPDATE.

describe("unclaimed", () => {
  it("another worker's live claim of this attempt: wait for its lease", () => {
    expect(unclaimed({ status: Status.SENDING, attempts: 2, lease_left_ms: 1234.2 }, 2)).toEqual({ kind: "leased", leaseLeftMs: 1235 });
  });

  it("a lease that ran out between the UPDATE and the read is still this attempt's claim: wait 0 and claim again, never skip", () => {
    // Skipping here (once "stale") made a worker drop a record whose holder had died, until the sweep.
    expect(unclaimed({ status: Status.SENDING, attempts: 1, lease_left_ms: -3.5 }, 1)).toEqual({ kind: "leased", leaseLeftMs: 0 });
  });

  it("anything else is stale: another attempt, a finished or canceled row, or none", () => {
    expect(unclaimed({ status: Status.SENDING, attempts: 3, lease_left_ms: 500 }, 2)).toEqual({ kind: "stale", status: Status.SENDING, attempts: 3 });
    expect(unclaimed({ status: Status.SENT, attempts: 1, lease_left_ms: null }, 1)).toEqual({ kind: "stale", status: Status.SENT, attempts: 1 });
    expect(unclaimed({ status: Status.CANCELED, attempts: 0, lease_left_ms: null }, 1)).toEqual({ kind: "stale", status: Status.CANCELED, attempts: 0 });
    expect(unclaimed(undefined, 1)).toEqual({ kind: "stale", status: undefined, attempts: 0 });
  });
});
