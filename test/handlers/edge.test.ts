import { describe, expect, it } from "vitest";
import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import { UnavailableError } from "../../src/errors.js";
import { drain, failure, startRouterHerald, type RouterFakes, type RouterHerald } from "../support/router.js";

// What every RPC shares, through the real edge: no key or an unknown one is UNAUTHENTICATED
// before any handler runs; a dependency that is down is UNAVAILABLE; anything unexpected is
// INTERNAL, logged with its cause and never sent to the caller.

const ID = "0190a000-0000-7000-8000-00000000abcd";
const email = {
  channel: Channel.EMAIL,
  recipient: { userId: "ada", address: { case: "email" as const, value: "ada@example.com" } },
  body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
};

interface Rpc {
  name: string;
  /** The store methods the RPC reaches with a valid request, each doing `does`. */
  reaches(does: () => Promise<never>): RouterFakes;
  call(h: RouterHerald, apiKey?: string | null): Promise<unknown>;
}

const rpcs: Rpc[] = [
  {
    name: "Create",
    reaches: (does) => ({ notifications: { accept: does } }),
    call: (h, key) => h.client(NotificationService, key).create({ notification: email }),
  },
  {
    name: "Schedule",
    reaches: (does) => ({ notifications: { accept: does } }),
    call: (h, key) =>
      h.client(NotificationService, key).schedule({ notification: email, when: { case: "localTime", value: { dateTime: "2030-01-03T09:00", timeZone: "UTC" } } }),
  },
  { name: "Get", reaches: (does) => ({ notifications: { get: does } }), call: (h, key) => h.client(NotificationService, key).get({ id: ID }) },
  { name: "Cancel", reaches: (does) => ({ notifications: { cancel: does } }), call: (h, key) => h.client(NotificationService, key).cancel({ id: ID }) },
  {
    name: "WatchStatus",
    reaches: (does) => ({ watch: { snapshots: { exists: does, snapshot: does } } }),
    call: (h, key) => drain(h.client(NotificationService, key).watchStatus({ selector: { case: "notificationId", value: ID } })),
  },
  {
    name: "PutTemplate",
    reaches: (does) => ({ templates: { put: does } }),
    call: (h, key) => h.client(TemplateService, key).putTemplate({ templateId: "welcome", content: { text: "Hi {{name}}" } }),
  },
  { name: "GetTemplate", reaches: (does) => ({ templates: { get: does } }), call: (h, key) => h.client(TemplateService, key).getTemplate({ templateId: "welcome" }) },
  { name: "ListTemplates", reaches: (does) => ({ templates: { list: does } }), call: (h, key) => h.client(TemplateService, key).listTemplates({}) },
  { name: "ListDeadLetters", reaches: (does) => ({ deadLetters: { list: does } }), call: (h, key) => h.client(DeadLetterService, key).listDeadLetters({}) },
  {
    name: "GetDeadLetter",
    reaches: (does) => ({ deadLetters: { get: does } }),
    call: (h, key) => h.client(DeadLetterService, key).getDeadLetter({ notificationId: ID }),
  },
  {
    name: "RedriveDeadLetters",
    reaches: (does) => ({ deadLetters: { redrive: does } }),
    call: (h, key) => h.client(DeadLetterService, key).redriveDeadLetters({ target: { case: "notificationId", value: ID } }),
  },
];

describe.each(rpcs)("$name through the edge", (rpc) => {
  it("is UNAUTHENTICATED without an API key, and the store is never reached", async () => {
    let reached = false;
    const h = startRouterHerald(
      rpc.reaches(() => {
        reached = true;
        return Promise.reject(new Error("reached"));
      }),
    );
    expect(await failure(rpc.call(h, null))).toEqual({ code: "Unauthenticated", message: "missing API key: send 'authorization: Bearer <api key>'" });
    expect(await failure(rpc.call(h, "not-a-key"))).toEqual({ code: "Unauthenticated", message: "unknown API key" });
    expect(reached).toBe(false);
  });

  it("is UNAVAILABLE when the database is down", async () => {
    const h = startRouterHerald(rpc.reaches(() => Promise.reject(new UnavailableError("database", "connect ECONNREFUSED 127.0.0.1:5432"))));
    expect(await failure(rpc.call(h))).toEqual({ code: "Unavailable", message: "database unavailable, retry later" });
    expect(h.logs.find((l) => l.msg === "database unavailable")).toMatchObject({ dependency: "database", tenant: "tenant-a" });
  });

  it("is INTERNAL for an unexpected error, logged with its cause and not sent", async () => {
    const secret = "relation \"notifications\" does not exist at /srv/herald/secret-path";
    const h = startRouterHerald(rpc.reaches(() => Promise.reject(new Error(secret))));
    const got = await failure(rpc.call(h));
    expect(got).toEqual({ code: "Internal", message: "internal error" });
    const logged = h.logs.find((l) => l.msg === "rpc failed unexpectedly");
    expect(logged?.err?.message).toBe(secret);
    expect(logged).toMatchObject({ rpc: rpc.name, tenant: "tenant-a" });
  });
});
