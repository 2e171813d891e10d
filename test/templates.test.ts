import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TemplateService } from "../gen/herald/v1/template_pb.js";
import { Channel, NotificationSpecSchema, Status } from "../gen/herald/v1/notification_pb.js";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { createGrpcTransport } from "../src/client/grpc-transport.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";

// TemplateService end to end on real PostgreSQL, and templated notifications
// through accept → outbox → Kafka: versions, paging, tenancy, the accept-time
// check and the version pinned into what is stored and dispatched.

let herald: TestHerald;
let a: Client<typeof TemplateService>;
let b: Client<typeof TemplateService>;

const auth = (key: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};
const templates = (key: string) =>
  createClient(TemplateService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [auth(key)] }));
const failure = (p: Promise<unknown>): Promise<ConnectError | undefined> => p.then(() => undefined, (e: unknown) => ConnectError.from(e));

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const r = await herald.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) q`, params);
  return Number(r.rows[0]!.n);
}

function templated(userId: string, templateId: string, variables: Record<string, string>, version = 0) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "template" as const, value: { templateId, variables, version } },
  };
}

beforeAll(async () => {
  herald = await startTestHerald();
  a = templates(KEY_A);
  b = templates(KEY_B);
});
afterAll(async () => {
  await herald?.stop();
});

describe("TemplateService", () => {
  it("stores versions 1, 2, … and gets the latest or a given one", async () => {
    const v1 = await a.putTemplate({ templateId: "welcome", content: { subject: "Hi {{name}}", text: "Welcome, {{name}}" }, description: "first" });
    expect(v1.template).toMatchObject({ templateId: "welcome", version: 1, requiredVariables: ["name"], description: "first" });
    expect(v1.template?.createTime?.seconds).toBeGreaterThan(0n);
    const v2 = await a.putTemplate({
      templateId: "welcome",
      content: { text: "Welcome back, {{name}}{{#if plan}} ({{plan}}){{/if}}", html: "<p>{{name}} {{team}}</p>" },
      channelOverrides: [{ channel: Channel.SMS, content: { text: "Hi {{name}}" } }],
    });
    expect(v2.template).toMatchObject({ version: 2, requiredVariables: ["name", "team"] });

    expect((await a.getTemplate({ templateId: "welcome" })).template).toEqual(v2.template);
    expect((await a.getTemplate({ templateId: "welcome", version: 1 })).template).toEqual(v1.template);
    expect(await count("SELECT 1 FROM templates WHERE tenant = 'tenant-a' AND template_id = 'welcome'")).toBe(2);

    const noVersion = await failure(a.getTemplate({ templateId: "welcome", version: 3 }));
    expect([noVersion?.code, noVersion?.rawMessage]).toEqual([Code.NotFound, 'template "welcome" version 3 not found']);
    const noTemplate = await failure(a.getTemplate({ templateId: "nope" }));
    expect([noTemplate?.code, noTemplate?.rawMessage]).toEqual([Code.NotFound, 'template "nope" not found']);
  });

  it("gives concurrent puts of one id distinct versions", async () => {
    const puts = await Promise.all(Array.from({ length: 8 }, (_, i) => a.putTemplate({ templateId: "race", content: { text: `v${i}` } })));
    expect(puts.map((p) => p.template!.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("is served on the gRPC listener too", async () => {
    const transport = createGrpcTransport({ address: herald.grpcAddress });
    try {
      const grpc = createClient(TemplateService, transport);
      const res = await grpc.getTemplate({ templateId: "welcome", version: 1 }, { headers: { authorization: `Bearer ${KEY_A}` } });
      expect(res.template?.content?.text).toBe("Welcome, {{name}}");
    } finally {
      transport.close();
    }
  });

  it("refuses a template that does not compile, naming the field; nothing stored", async () => {
    const before = await count("SELECT 1 FROM templates");
    const err = await failure(
      a.putTemplate({
        templateId: "broken",
        content: { text: "ok {{name}}" },
        channelOverrides: [{ channel: Channel.PUSH, content: { text: "x" } }, { channel: Channel.SMS, content: { text: "{{#each items}}" } }],
      }),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toBe("channel_overrides[1].content.text: does not compile: Parse error on line 1: unexpected end of template");
    const helper = await failure(a.putTemplate({ templateId: "broken", content: { html: "{{shout name}}" } }));
    expect(helper?.rawMessage).toBe("content.html: does not compile: unknown helper shout (only if, unless, each, with and lookup exist) at line 1, column 1");
    expect(await count("SELECT 1 FROM templates")).toBe(before);
  });

  it("lists the latest version of each id, by id, a page at a time", async () => {
    for (const id of ["list-5", "list-3", "list-1", "list-4", "list-2"]) await b.putTemplate({ templateId: id, content: { text: `${id} v1` } });
    await b.putTemplate({ templateId: "list-3", content: { text: "list-3 v2" } });

    const pages: Array<Array<[string, number, string]>> = [];
    let pageToken = "";
    do {
      const page = await b.listTemplates({ pageSize: 2, pageToken });
      pages.push(page.templates.map((t) => [t.templateId, t.version, t.content?.text ?? ""]));
      pageToken = page.nextPageToken;
    } while (pageToken !== "" && pages.length < 10);
    expect(pages).toEqual([
      [["list-1", 1, "list-1 v1"], ["list-2", 1, "list-2 v1"]],
      [["list-3", 2, "list-3 v2"], ["list-4", 1, "list-4 v1"]],
      [["list-5", 1, "list-5 v1"]],
    ]);
    expect((await b.listTemplates({})).templates.map((t) => t.templateId)).toEqual(["list-1", "list-2", "list-3", "list-4", "list-5"]);
  });

  it("refuses a bad page size or token", async () => {
    for (const pageSize of [-1, 501]) {
      const err = await failure(a.listTemplates({ pageSize }));
      expect([err?.code, err?.rawMessage]).toEqual([Code.InvalidArgument, `page_size: must be 0 to 500 (0 means 100), got ${pageSize}`]);
    }
    for (const pageToken of ["not a token", Buffer.from("{}").toString("base64url"), "eyJ2IjoxLCJhZnRlciI6MX0"]) {
      const err = await failure(a.listTemplates({ pageToken }));
      expect([err?.code, err?.rawMessage]).toEqual([Code.InvalidArgument, "page_token: must be a next_page_token from a previous response"]);
    }
  });

  it("keeps tenants apart: ids, versions and lists", async () => {
    const err = await failure(b.getTemplate({ templateId: "welcome" }));
    expect(err?.code).toBe(Code.NotFound);
    const listed = await b.listTemplates({ pageSize: 500 });
    expect(listed.templates.map((t) => t.templateId)).not.toContain("welcome");
    const own = await b.putTemplate({ templateId: "welcome", content: { text: "B's own" } });
    expect(own.template?.version).toBe(1);
    expect((await a.getTemplate({ templateId: "welcome" })).template?.version).toBe(2);
  });
});

describe("notifications with a TemplateRef", () => {
  it("refuses an unknown template, version or a missing variable; nothing stored", async () => {
    await a.putTemplate({ templateId: "receipt", content: { subject: "Receipt {{order}}", text: "Thanks {{name}}" } });
    const client = herald.client(KEY_A);
    const cases: Array<[ReturnType<typeof templated>, string]> = [
      [templated("ref-bad", "nope", { name: "Ada" }), 'notification.template.template_id: no template "nope" in this tenant'],
      [templated("ref-bad", "receipt", { name: "Ada", order: "1" }, 7), 'notification.template.version: template "receipt" has no version 7'],
      [templated("ref-bad", "receipt", { order: "1" }), 'notification.template.variables: missing required variable "name"'],
      [templated("ref-bad", "list-1", {}), 'notification.template.template_id: no template "list-1" in this tenant'], // tenant B's
    ];
    for (const [notification, message] of cases) {
      const created = await failure(client.create({ notification, idempotencyKey: "bad-ref" }));
      expect([created?.code, created?.rawMessage]).toEqual([Code.InvalidArgument, message]);
      const scheduled = await failure(client.schedule({ notification, when: { case: "deliverAt", value: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600) } } }));
      expect([scheduled?.code, scheduled?.rawMessage]).toEqual([Code.InvalidArgument, message]);
    }
    expect(await count("SELECT 1 FROM notifications WHERE user_id = 'ref-bad'")).toBe(0);
    expect(await count("SELECT 1 FROM outbox WHERE key = 'ref-bad'")).toBe(0);
  });

  it("pins version 0 to the latest version in what is stored, read and dispatched", async () => {
    await a.putTemplate({ templateId: "pinned", content: { text: "v1 {{name}}" } });
    await a.putTemplate({ templateId: "pinned", content: { text: "v2 {{name}}" } });
    const client = herald.client(KEY_A);
    const { notification } = await client.create({ notification: templated("pin-user", "pinned", { name: "Ada" }), idempotencyKey: "pin-1" });
    expect(notification?.status).toBe(Status.QUEUED);
    expect(notification?.body).toMatchObject({ case: "template", value: { templateId: "pinned", version: 2, variables: { name: "Ada" } } });
    const got = await client.get({ id: notification!.id });
    expect(got.notification?.body).toMatchObject({ case: "template", value: { version: 2 } });
    const row = await herald.db.pool.query<{ spec: Buffer }>("SELECT spec FROM notifications WHERE id = $1", [notification!.id]);
    expect(fromBinary(NotificationSpecSchema, row.rows[0]!.spec).body).toMatchObject({ case: "template", value: { version: 2 } });

    const records = await readTopic(herald.topic("herald.email"), { until: (r) => r.some((x) => x.key === "tenant-a/pin-user") });
    const dispatch = fromBinary(DispatchSchema, records.find((r) => r.key === "tenant-a/pin-user")!.value);
    expect(dispatch.notificationId).toBe(notification!.id);
    expect(dispatch.notification?.body).toMatchObject({ case: "template", value: { templateId: "pinned", version: 2, variables: { name: "Ada" } } });

    // A later version changes neither it nor a retry of the same request.
    await a.putTemplate({ templateId: "pinned", content: { text: "v3 {{name}}" } });
    const again = await client.create({ notification: templated("pin-user", "pinned", { name: "Ada" }), idempotencyKey: "pin-1" });
    expect(again.notification?.id).toBe(notification!.id);
    expect(again.notification?.body).toMatchObject({ value: { version: 2 } });

    const scheduled = await client.schedule({
      notification: templated("pin-user", "pinned", { name: "Ada" }),
      when: { case: "deliverAt", value: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600) } },
    });
    expect(scheduled.notification?.body).toMatchObject({ value: { version: 3 } });
  });
});
