import { Code, ConnectError } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { deadLetterFilter } from "../../web/src/dead-letter-filter.js";
import { outcomeText, redriveEach } from "../../web/src/redrive.js";

// The dead-letter view's pure parts: the filter form as a ListDeadLetters
// filter, and redriving a selection one id at a time.

const blank = { channel: "", status: "", since: "", until: "", errorContains: "" };

describe("deadLetterFilter", () => {
  it("an empty form matches everything", () => {
    expect(deadLetterFilter(blank)).toEqual({});
  });

  it("maps each field the form offers, the error text as typed", () => {
    expect(deadLetterFilter({ channel: "sms", status: "DEAD_LETTERED", since: "2026-12-03T10:00", until: "2026-12-03T11:30", errorContains: " 550 " })).toEqual({
      channel: Channel.SMS,
      status: Status.DEAD_LETTERED,
      since: timestampFromDate(new Date("2026-12-03T10:00")),
      until: timestampFromDate(new Date("2026-12-03T11:30")),
      errorContains: " 550 ",
    });
  });

  it("leaves out what the form cannot mean (an unknown choice, an unreadable time)", () => {
    expect(deadLetterFilter({ ...blank, channel: "fax", status: "SENT", since: "yesterday" })).toEqual({});
  });
});

describe("redriveEach", () => {
  it("redrives each id in turn and reports every refusal against its id, with the code's name", async () => {
    const calls: string[] = [];
    const outcome = await redriveEach(["a", "b", "c", "d"], async (id) => {
      calls.push(id);
      if (id === "b") throw new ConnectError("notification b is SENT; only FAILED and DEAD_LETTERED notifications can be redriven", Code.FailedPrecondition);
      if (id === "c") throw new ConnectError("notification c not found", Code.NotFound);
      return [id];
    });
    expect(calls).toEqual(["a", "b", "c", "d"]);
    expect(outcome).toEqual({
      redriven: ["a", "d"],
      errors: [
        { id: "b", code: "FAILED_PRECONDITION", message: "notification b is SENT; only FAILED and DEAD_LETTERED notifications can be redriven" },
        { id: "c", code: "NOT_FOUND", message: "notification c not found" },
      ],
    });
    expect(outcomeText(outcome)).toBe(
      "2 redriven, 2 failed: b FAILED_PRECONDITION: notification b is SENT; only FAILED and DEAD_LETTERED notifications can be redriven; c NOT_FOUND: notification c not found",
    );
  });

  it("an answer that does not name the id is not counted as redriven", async () => {
    const outcome = await redriveEach(["a"], async () => []);
    expect(outcome).toEqual({ redriven: [], errors: [{ id: "a", code: "NOT_REDRIVEN", message: "the server queued nothing for this id" }] });
    expect(outcomeText({ redriven: ["x", "y"], errors: [] })).toBe("2 redriven");
  });
});
