import { timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel, Status } from "../../gen/herald/v1/notification_pb.js";
import { UsageError } from "../../src/cli/usage-error.js";
import { parseWatchArgs } from "../../src/cli/watch-command.js";

// `herald watch` flags: what request each combination asks for, and which are refused before
// anything connects (UsageError: exit 2 with the usage text).

describe("parseWatchArgs", () => {
  it("defaults to the whole tenant, live only", () => {
    const { request, json } = parseWatchArgs([]);
    expect(request).toMatchObject({ selector: { case: undefined }, statuses: [], channels: [], snapshot: false, after: "" });
    expect(request.snapshotSince).toBeUndefined();
    expect(json).toBe(false);
    expect(parseWatchArgs(["--all"]).request.selector).toEqual({ case: undefined });
  });

  it("--id, --user, filters (repeated or comma lists, any case), --after, --json", () => {
    const byId = parseWatchArgs(["--id", "n-1", "--status", "sent", "--status", "DEAD_LETTERED,failed", "--after", "cur-9", "--json"]);
    expect(byId.request).toMatchObject({
      selector: { case: "notificationId", value: "n-1" },
      statuses: [Status.SENT, Status.DEAD_LETTERED, Status.FAILED],
      after: "cur-9",
    });
    expect(byId.json).toBe(true);

    const byUser = parseWatchArgs(["--user", "u-1", "--channel", "email", "--channel", "sms,webhook", "--status", "dead-lettered"]);
    expect(byUser.request).toMatchObject({
      selector: { case: "userId", value: "u-1" },
      channels: [Channel.EMAIL, Channel.SMS, Channel.WEBHOOK],
      statuses: [Status.DEAD_LETTERED],
    });
  });

  it("--snapshot with --since sets snapshot_since", () => {
    const { request } = parseWatchArgs(["--user", "u-1", "--snapshot", "--since", "2026-11-23T09:00:00Z"]);
    expect(request.snapshot).toBe(true);
    expect(timestampDate(request.snapshotSince!).toISOString()).toBe("2026-11-23T09:00:00.000Z");
  });

  it.each([
    [["--id", "n-1", "--all"], "--id and --all cannot be combined: watch one notification, one user, or --all"],
    [["--id", "n-1", "--user", "u-1"], "--id and --user cannot be combined: watch one notification, one user, or --all"],
    [["--user", "u-1", "--all"], "--user and --all cannot be combined: watch one notification, one user, or --all"],
    [["--id", ""], "--id needs a value"],
    [["--after", ""], "--after needs a cursor (printed by an earlier watch)"],
    [["--after", "c1", "--snapshot"], "--after resumes a watch; --snapshot starts a new one: use one of them"],
    [["--since", "2026-11-23T09:00:00Z"], "--since limits the snapshot: use it with --snapshot"],
    [["--id", "n-1", "--snapshot", "--since", "2026-11-23T09:00:00Z"], "--since goes with --user or --all, not --id"],
    [["--snapshot", "--since", "yesterday"], "--since expects an ISO-8601 instant, e.g. 2026-11-23T09:00:00Z"],
    [["--status", "lost"], `--status: expected one of scheduled, queued, sending, sent, delivered, retrying, failed, dead_lettered, canceled; got "lost"`],
    [["--status", "unspecified"], `--status: expected one of scheduled, queued, sending, sent, delivered, retrying, failed, dead_lettered, canceled; got "unspecified"`],
    [["--channel", "fax"], `--channel: expected email, sms, push or webhook; got "fax"`],
  ])("%j is a usage error: %s", (args, message) => {
    expect(() => parseWatchArgs(args)).toThrow(new UsageError(message));
  });

  it("parseArgs' own complaints (unknown flag, missing value, stray argument) are usage errors too", () => {
    for (const args of [["--follow"], ["--id"], ["n-1"]]) {
      expect(() => parseWatchArgs(args), JSON.stringify(args)).toThrow(UsageError);
    }
  });
});
