import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DeadLetterSchema, DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { Channel, NotificationSchema, Status } from "../../gen/herald/v1/notification_pb.js";
import type { DeadLetterQuery, RedriveTarget } from "../../src/store/dead-letters.js";
import { InvalidPageTokenError } from "../../src/store/page-token.js";
import { failure, NOW, recorded, startRouterHerald, TENANT } from "../support/router.js";

// ListDeadLetters, GetDeadLetter and RedriveDeadLetters in-process (test/support/router.ts).

const ID = "0190a000-0000-7000-8000-00000000abcd";
const letter = create(DeadLetterSchema, { notification: create(NotificationSchema, { id: ID, status: Status.DEAD_LETTERED }), lastError: "554 rejected" });

describe("ListDeadLetters", () => {
  it("turns the filter into the store's query and answers with the page", async () => {
    const list = recorded(() => ({ deadLetters: [letter], nextPageToken: "" }));
    const client = startRouterHerald({ deadLetters: { list } }).client(DeadLetterService);
    const since = new Date(NOW - 3_600_000);
    const token = "next-page"; // opaque to the handler: the store decodes it
    const got = await client.listDeadLetters({
      filter: { channel: Channel.SMS, since: timestampFromDate(since), errorContains: "rejected", status: Status.FAILED },
      pageSize: 10,
      pageToken: token,
    });
    await client.listDeadLetters({});
    const query: DeadLetterQuery = { channel: Channel.SMS, since, errorContains: "rejected", status: Status.FAILED };
    expect(list.calls).toEqual([
      [TENANT, query, { pageSize: 10, pageToken: token }],
      [TENANT, {}, { pageSize: 100, pageToken: "" }],
    ]);
    expect(got.deadLetters.map((d) => [d.notification?.id, d.lastError])).toEqual([[ID, "554 rejected"]]);
  });

  it("is INVALID_ARGUMENT naming the broken field", async () => {
    const client = startRouterHerald({ deadLetters: { list: () => Promise.reject(new InvalidPageTokenError()) } }).client(DeadLetterService);
    expect(await failure(client.listDeadLetters({ pageSize: 501 }))).toEqual({ code: "InvalidArgument", message: "page_size: must be 0 to 500 (0 means 100)" });
    expect(await failure(client.listDeadLetters({ pageToken: "forged" }))).toEqual({
      code: "InvalidArgument",
      message: "page_token: must be a next_page_token from a previous response",
    });
    expect(await failure(client.listDeadLetters({ filter: { status: Status.SENT } }))).toEqual({
      code: "InvalidArgument",
      message: "filter.status: must be STATUS_FAILED or STATUS_DEAD_LETTERED when set",
    });
    const at = timestampFromDate(new Date(NOW));
    expect(await failure(client.listDeadLetters({ filter: { since: at, until: at } }))).toEqual({
      code: "InvalidArgument",
      message: "filter.until: must be after filter.since",
    });
  });
});

describe("GetDeadLetter", () => {
  it("answers with the tenant's open dead letter", async () => {
    const get = recorded(() => letter);
    const client = startRouterHerald({ deadLetters: { get } }).client(DeadLetterService);
    const { deadLetter } = await client.getDeadLetter({ notificationId: ID });
    expect(get.calls).toEqual([[TENANT, ID]]);
    expect(deadLetter?.notification?.id).toBe(ID);
    expect(deadLetter?.lastError).toBe("554 rejected");
  });

  it("is NOT_FOUND when there is no open dead letter, INVALID_ARGUMENT for a malformed id", async () => {
    const client = startRouterHerald({ deadLetters: { get: () => Promise.resolve(undefined) } }).client(DeadLetterService);
    expect(await failure(client.getDeadLetter({ notificationId: ID }))).toEqual({ code: "NotFound", message: `no dead letter for notification ${ID}` });
    expect(await failure(client.getDeadLetter({ notificationId: "" }))).toEqual({ code: "InvalidArgument", message: "notification_id: is required" });
  });
});

describe("RedriveDeadLetters", () => {
  it("redrives one id, or what a filter selects up to the default limit, with the clock and request id", async () => {
    const redrive = recorded((_tenant: string, _target: RedriveTarget, _opts: { now: Date; correlationId: string }) => ({ kind: "redriven" as const, ids: [ID] }));
    const client = startRouterHerald({ deadLetters: { redrive } }).client(DeadLetterService);
    const headers = { headers: { "x-request-id": "req-7" } };
    expect((await client.redriveDeadLetters({ target: { case: "notificationId", value: ID } }, headers)).notificationIds).toEqual([ID]);
    expect((await client.redriveDeadLetters({ target: { case: "filter", value: { channel: Channel.EMAIL } } }, headers)).notificationIds).toEqual([ID]);
    const opts = { now: new Date(NOW), correlationId: "req-7" };
    expect(redrive.calls).toEqual([
      [TENANT, { id: ID }, opts],
      [TENANT, { filter: { channel: Channel.EMAIL }, limit: 1000 }, opts],
    ]);
  });

  it("is FAILED_PRECONDITION for a notification that is not dead, NOT_FOUND for an unknown one", async () => {
    let outcome: { kind: "not_dead"; status: Status } | { kind: "not_found" } = { kind: "not_dead", status: Status.SENT };
    const client = startRouterHerald({ deadLetters: { redrive: () => Promise.resolve(outcome) } }).client(DeadLetterService);
    const one = { target: { case: "notificationId" as const, value: ID } };
    expect(await failure(client.redriveDeadLetters(one))).toEqual({
      code: "FailedPrecondition",
      message: `notification ${ID} is SENT; only FAILED and DEAD_LETTERED notifications can be redriven`,
    });
    outcome = { kind: "not_found" };
    expect(await failure(client.redriveDeadLetters(one))).toEqual({ code: "NotFound", message: `notification ${ID} not found` });
  });

  it("is INVALID_ARGUMENT without a target or with a limit out of range", async () => {
    const client = startRouterHerald().client(DeadLetterService);
    expect(await failure(client.redriveDeadLetters({}))).toEqual({ code: "InvalidArgument", message: "target: is required: set notification_id or filter" });
    expect(await failure(client.redriveDeadLetters({ target: { case: "filter", value: {} }, limit: 10_001 }))).toEqual({
      code: "InvalidArgument",
      message: "limit: must be 0 to 10000 (0 means 1000)",
    });
    expect(await failure(client.redriveDeadLetters({ target: { case: "notificationId", value: "x" } }))).toEqual({
      code: "InvalidArgument",
      message: "notification_id: must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
    });
  });
});
