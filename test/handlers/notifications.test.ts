import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel, NotificationSchema, Status, StatusEventSchema, type Notification } from "../../gen/herald/v1/notification_pb.js";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { TemplateSchema } from "../../gen/herald/v1/template_pb.js";
import type { AcceptInput } from "../../src/store/accept-statement.js";
import { failure, NOW, recorded, startRouterHerald, TENANT } from "../support/router.js";

// Create, Schedule, Get and Cancel in-process (test/support/router.ts): what each hands its
// store, what it answers, and the exact code and message of each refusal.

const ID = "0190a000-0000-7000-8000-00000000abcd";
const email = {
  channel: Channel.EMAIL,
  recipient: { userId: "ada", address: { case: "email" as const, value: "ada@example.com" } },
  body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
};
const requestId = { headers: { "x-request-id": "req-42" } };

/** The notification a store would return for `input`. */
function stored(input: AcceptInput): Notification {
  return create(NotificationSchema, {
    id: input.id,
    channel: input.spec.channel,
    recipient: input.spec.recipient,
    status: input.status,
    createTime: timestampFromDate(input.now),
    deliverTime: timestampFromDate(input.deliverAt),
    idempotencyKey: input.idempotencyKey,
  });
}

/** A NotificationStore.accept that stores nothing and remembers what it was given. */
function recordingAccept() {
  const inputs: AcceptInput[] = [];
  return {
    inputs,
    accept: (input: AcceptInput) => {
      inputs.push(input);
      return Promise.resolve({ kind: "created" as const, notification: stored(input) });
    },
  };
}

describe("Create", () => {
  it("stores a QUEUED notification due now for the caller's tenant and answers with it", async () => {
    const store = recordingAccept();
    const h = startRouterHerald({ notifications: store, maxAttempts: (c) => (c === Channel.EMAIL ? 7 : 1) });
    const { notification } = await h.client(NotificationService).create({ notification: email }, requestId);
    expect(store.inputs).toHaveLength(1);
    expect(store.inputs[0]).toMatchObject({
      tenant: TENANT,
      id: h.ids[0],
      status: Status.QUEUED,
      idempotencyKey: "",
      requestHash: null,
      correlationId: "req-42",
      maxAttempts: 7,
      deliverAt: new Date(NOW),
      now: new Date(NOW),
    });
    expect(notification?.id).toBe(h.ids[0]);
    expect(notification?.status).toBe(Status.QUEUED);
    expect(notification?.recipient?.address).toEqual({ case: "email", value: "ada@example.com" });
    expect(timestampDate(notification!.deliverTime!).getTime()).toBe(NOW);
  });

  it("hashes the request when it carries an idempotency key, and a duplicate answers with the first result", async () => {
    const first = create(NotificationSchema, { id: ID, status: Status.SENT });
    let input: AcceptInput | undefined;
    const h = startRouterHerald({
      notifications: {
        accept: (i) => {
          input = i;
          return Promise.resolve({ kind: "duplicate", notification: first });
        },
      },
    });
    const { notification } = await h.client(NotificationService).create({ notification: email, idempotencyKey: "order-1" });
    expect(input?.idempotencyKey).toBe("order-1");
    expect(input?.requestHash).toBeInstanceOf(Buffer);
    expect(input?.requestHash).toHaveLength(32);
    expect(notification).toMatchObject({ id: ID, status: Status.SENT });
  });

  it("is ALREADY_EXISTS when the key was used for a different request", async () => {
    const h = startRouterHerald({ notifications: { accept: () => Promise.resolve({ kind: "key_conflict" }) } });
    expect(await failure(h.client(NotificationService).create({ notification: email, idempotencyKey: "order-1" }))).toEqual({
      code: "AlreadyExists",
      message: "idempotency_key: already used for a different request; use a new key for a new notification",
    });
  });

  it("is INVALID_ARGUMENT naming the first broken field, before the store is reached", async () => {
    const h = startRouterHerald(); // any store call would be INTERNAL
    const client = h.client(NotificationService);
    expect(await failure(client.create({}))).toEqual({ code: "InvalidArgument", message: "notification: is required" });
    expect(await failure(client.create({ notification: { ...email, channel: Channel.UNSPECIFIED } }))).toEqual({
      code: "InvalidArgument",
      message: "notification.channel: is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK",
    });
    expect(
      await failure(client.create({ notification: { ...email, recipient: { userId: "ada", address: { case: "email", value: "not-an-address" } } } })),
    ).toEqual({ code: "InvalidArgument", message: "notification.recipient.email: must be an email address like ada@example.com" });
    expect(await failure(client.create({ notification: email, idempotencyKey: "has space" }))).toEqual({
      code: "InvalidArgument",
      message: "idempotency_key: must be printable ASCII without spaces",
    });
  });

  it("pins a template reference to the latest version, or names the missing template", async () => {
    const template = create(TemplateSchema, { templateId: "welcome", version: 3, content: { text: "Hi {{name}}" }, requiredVariables: ["name"] });
    const store = recordingAccept();
    const h = startRouterHerald({
      notifications: store,
      templates: { get: (tenant, id, version) => Promise.resolve(tenant === TENANT && id === "welcome" && (version === 0 || version === 3) ? template : undefined) },
    });
    const client = h.client(NotificationService);
    const ref = (templateId: string, variables: Record<string, string>, version = 0) =>
      ({ ...email, body: { case: "template" as const, value: { templateId, variables, version } } });

    await client.create({ notification: ref("welcome", { name: "Ada" }) });
    expect(store.inputs[0]?.spec.body).toMatchObject({ case: "template", value: { templateId: "welcome", version: 3 } });

    expect(await failure(client.create({ notification: ref("welcome", {}) }))).toEqual({
      code: "InvalidArgument",
      message: 'notification.template.variables: missing required variable "name"',
    });
    expect(await failure(client.create({ notification: ref("welcome", { name: "Ada" }, 9) }))).toEqual({
      code: "InvalidArgument",
      message: 'notification.template.version: template "welcome" has no version 9',
    });
    expect(await failure(client.create({ notification: ref("bye", { name: "Ada" }) }))).toEqual({
      code: "InvalidArgument",
      message: 'notification.template.template_id: no template "bye" in this tenant',
    });
    expect(store.inputs).toHaveLength(1);
  });
});

describe("Schedule", () => {
  const inAnHour = timestampFromDate(new Date(NOW + 3_600_000));

  it("stores a SCHEDULED notification due at deliver_at", async () => {
    const store = recordingAccept();
    const h = startRouterHerald({ notifications: store });
    const { notification } = await h.client(NotificationService).schedule({ notification: email, when: { case: "deliverAt", value: inAnHour } });
    expect(store.inputs[0]).toMatchObject({ tenant: TENANT, status: Status.SCHEDULED, deliverAt: new Date(NOW + 3_600_000), now: new Date(NOW) });
    expect(store.inputs[0]?.localTime).toBeUndefined();
    expect(notification?.status).toBe(Status.SCHEDULED);
    expect(timestampDate(notification!.deliverTime!).getTime()).toBe(NOW + 3_600_000);
  });

  it("resolves local_time in its zone and keeps the wall-clock form", async () => {
    const store = recordingAccept();
    const h = startRouterHerald({ notifications: store });
    await h.client(NotificationService).schedule({ notification: email, when: { case: "localTime", value: { dateTime: "2030-01-02T09:00", timeZone: "Europe/Berlin" } } });
    expect(store.inputs[0]).toMatchObject({
      deliverAt: new Date("2030-01-02T08:00:00Z"),
      localTime: { dateTime: "2030-01-02T09:00", timeZone: "Europe/Berlin" },
    });
  });

  it("is INVALID_ARGUMENT for a missing, past or too distant time", async () => {
    const h = startRouterHerald({ horizonMs: 86_400_000 });
    const client = h.client(NotificationService);
    expect(await failure(client.schedule({ notification: email }))).toEqual({ code: "InvalidArgument", message: "when: set deliver_at or local_time" });
    expect(await failure(client.schedule({ notification: email, when: { case: "deliverAt", value: timestampFromDate(new Date(NOW - 1000)) } }))).toEqual({
      code: "InvalidArgument",
      message: "deliver_at: must be in the future",
    });
    expect(
      await failure(client.schedule({ notification: email, when: { case: "deliverAt", value: timestampFromDate(new Date(NOW + 2 * 86_400_000)) } })),
    ).toEqual({ code: "InvalidArgument", message: "deliver_at: must be within 1 day" });
    expect(await failure(client.schedule({ when: { case: "deliverAt", value: inAnHour } }))).toEqual({ code: "InvalidArgument", message: "notification: is required" });
  });
});

describe("Schedule retried after its time came", () => {
  const past = timestampFromDate(new Date(NOW - 1000));

  it("answers a retry under the same key and request with the stored notification, instead of refusing the time", async () => {
    const storedOne = create(NotificationSchema, { id: ID, status: Status.SENT });
    const findByIdempotencyKey = recorded((_tenant: string, _key: string, _hash: Buffer, _now: Date): Notification | undefined => storedOne);
    const h = startRouterHerald({ notifications: { findByIdempotencyKey } });
    const { notification } = await h.client(NotificationService).schedule({ notification: email, when: { case: "deliverAt", value: past }, idempotencyKey: "k-1" });
    expect(notification).toEqual(storedOne);
    const [tenant, key, hash, now] = findByIdempotencyKey.calls[0]!;
    expect([tenant, key, now]).toEqual([TENANT, "k-1", new Date(NOW)]);
    expect(hash).toHaveLength(32);
  });

  it("still refuses the time when the key names nothing (or another request), and without a key asks nothing", async () => {
    const findByIdempotencyKey = recorded((_tenant: string, _key: string, _hash: Buffer, _now: Date): Notification | undefined => undefined);
    const client = startRouterHerald({ notifications: { findByIdempotencyKey } }).client(NotificationService);
    const refused = { code: "InvalidArgument", message: "deliver_at: must be in the future" };
    expect(await failure(client.schedule({ notification: email, when: { case: "deliverAt", value: past }, idempotencyKey: "k-2" }))).toEqual(refused);
    expect(await failure(client.schedule({ notification: email, when: { case: "deliverAt", value: past } }))).toEqual(refused);
    expect(findByIdempotencyKey.calls.map((c) => c[1])).toEqual(["k-2"]);
  });
});

describe("Get", () => {
  it("answers with the tenant's notification and its history", async () => {
    const notification = create(NotificationSchema, { id: ID, status: Status.SENT });
    const history = [1, 2, 3].map((sequence) => create(StatusEventSchema, { notificationId: ID, sequence, status: [Status.QUEUED, Status.SENDING, Status.SENT][sequence - 1] }));
    const get = recorded(() => ({ notification, history }));
    const got = await startRouterHerald({ notifications: { get } }).client(NotificationService).get({ id: ID });
    expect(get.calls).toEqual([[TENANT, ID]]);
    expect(got.notification).toMatchObject({ id: ID, status: Status.SENT });
    expect(got.history.map((e) => [e.sequence, e.status])).toEqual([
      [1, Status.QUEUED],
      [2, Status.SENDING],
      [3, Status.SENT],
    ]);
  });

  it("is NOT_FOUND for an id the tenant does not have", async () => {
    const h = startRouterHerald({ notifications: { get: () => Promise.resolve(undefined) } });
    expect(await failure(h.client(NotificationService).get({ id: ID }))).toEqual({ code: "NotFound", message: `notification ${ID} not found` });
  });

  it("is INVALID_ARGUMENT for a missing or malformed id", async () => {
    const client = startRouterHerald().client(NotificationService);
    expect(await failure(client.get({ id: "" }))).toEqual({ code: "InvalidArgument", message: "id: is required" });
    expect(await failure(client.get({ id: "42" }))).toEqual({
      code: "InvalidArgument",
      message: "id: must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
    });
  });
});

describe("Cancel", () => {
  it("answers with the canceled notification, passing the clock and request id to the store", async () => {
    const cancel = recorded((_tenant: string, id: string, _opts: { now: Date; correlationId: string }) => ({
      kind: "canceled" as const,
      notification: create(NotificationSchema, { id, status: Status.CANCELED }),
    }));
    const { notification } = await startRouterHerald({ notifications: { cancel } }).client(NotificationService).cancel({ id: ID }, requestId);
    expect(cancel.calls).toEqual([[TENANT, ID, { now: new Date(NOW), correlationId: "req-42" }]]);
    expect(notification).toMatchObject({ id: ID, status: Status.CANCELED });
  });

  it("is FAILED_PRECONDITION once the notification is past cancelling", async () => {
    const h = startRouterHerald({ notifications: { cancel: () => Promise.resolve({ kind: "too_late", status: Status.SENT }) } });
    expect(await failure(h.client(NotificationService).cancel({ id: ID }))).toEqual({
      code: "FailedPrecondition",
      message: `notification ${ID} is SENT; only SCHEDULED, QUEUED, RETRYING can be canceled`,
    });
  });

  it("is NOT_FOUND for an unknown id and INVALID_ARGUMENT for a malformed one", async () => {
    const client = startRouterHerald({ notifications: { cancel: () => Promise.resolve({ kind: "not_found" }) } }).client(NotificationService);
    expect(await failure(client.cancel({ id: ID }))).toEqual({ code: "NotFound", message: `notification ${ID} not found` });
    expect(await failure(client.cancel({ id: "nope" }))).toEqual({
      code: "InvalidArgument",
      message: "id: must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
    });
  });
});
