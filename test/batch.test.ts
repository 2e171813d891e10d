import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Status, type NotificationSpec } from "../gen/herald/v1/notification_pb.js";
import { BatchItemSchema, NotificationService, SkipReason, type CreateBatchResponse } from "../gen/herald/v1/notification_service_pb.js";
import { createRecipientClient, type HeraldClient } from "../src/client/index.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { bearer, rejection } from "./support/rpc.js";
import { sendBatchFile } from "../src/cli/batch-command.js";
import { UsageError } from "../src/cli/usage-error.js";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// CreateBatch through the real listeners: up to 1,000 Create, Schedule and Notify requests in one
// call and one transaction, each answered on its own: an item that breaks a rule is named by its
// index and field while the others are stored and published; per-item idempotency keys make a
// whole batch safe to retry. Outcomes are read from the answers, SQL and the Kafka topics.

let herald: TestHerald;
let client: HeraldClient;

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server", "relay"] });
  client = herald.client(KEY_A);
});
afterAll(async () => {
  await herald?.stop();
});

type ItemInit = MessageInitShape<typeof BatchItemSchema>;
type SpecInit = MessageInitShape<typeof NotificationSpecSchema>;

/** The spec of an email for item `i` of batch `tag`; `over` replaces parts of it. */
const spec = (tag: string, i: number, over: Partial<SpecInit> = {}): NotificationSpec =>
  create(NotificationSpecSchema, {
    channel: Channel.EMAIL,
    recipient: { userId: `${tag}-user-${i % 37}`, address: { case: "email", value: `${tag}.${i}@example.com` } },
    body: { case: "content", value: { subject: `Item ${i}`, text: `Body ${i}` } },
    labels: { batch: tag },
    ...(over as object),
  });
const email = (tag: string, i: number, over: Partial<SpecInit> = {}, idempotencyKey = ""): ItemInit => ({
  item: { case: "create", value: { notification: spec(tag, i, over), idempotencyKey } },
});

const errors = (res: CreateBatchResponse) =>
  res.results.flatMap((r, i) => (r.result.case === "error" ? [{ i, code: r.result.value.code, message: r.result.value.message }] : []));
const stored = async (tag: string) =>
  (await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE labels->>'batch' = $1", [tag])).rows[0]!.n;

describe("CreateBatch", () => {
  it("stores the 997 good items of 1,000, names the 3 bad ones by index and field, and publishes the 997", async () => {
    const items = Array.from({ length: 1000 }, (_, i) => email("thousand", i));
    items[10] = email("thousand", 10, { recipient: { userId: "u", address: { case: "email", value: "not-an-address" } } });
    items[500] = email("thousand", 500, { body: { case: undefined } });
    items[999] = email("thousand", 999, { body: { case: "template", value: { templateId: "no-such-template" } } });

    const res = await client.createBatch({ items });

    expect(res.results).toHaveLength(1000);
    expect(errors(res)).toEqual([
      { i: 10, code: Code.InvalidArgument, message: "items[10].create.notification.recipient.email: must be an email address like ada@example.com" },
      { i: 500, code: Code.InvalidArgument, message: "items[500].create.notification: body is required: set content or template" },
      { i: 999, code: Code.InvalidArgument, message: 'items[999].create.notification.template.template_id: no template "no-such-template" in this tenant' },
    ]);
    const ok = res.results.flatMap((r) => (r.result.case === "notification" ? [r.result.value] : []));
    expect(ok).toHaveLength(997);
    expect(ok.every((n) => n.status === Status.QUEUED)).toBe(true);
    // Each answer is its own item's, in order.
    expect(ok[0]!.recipient?.address.value).toBe("thousand.0@example.com");
    expect(res.results[11]!.result.value).toMatchObject({ recipient: { address: { value: "thousand.11@example.com" } } });
    expect(await stored("thousand")).toBe(997);

    // Published: a Dispatch for each of the 997 on herald.email, none for the bad three.
    const ids = new Set(ok.map((n) => n.id));
    const records = await readTopic(herald.topic("herald.email"), {
      until: (r) => r.filter((x) => ids.has(fromBinary(DispatchSchema, x.value).notificationId)).length >= 997,
      timeoutMs: 120_000,
    });
    const published = records.map((r) => fromBinary(DispatchSchema, r.value).notificationId).filter((id) => ids.has(id));
    expect(new Set(published).size).toBe(997);
  });

  it("makes a batch safe to retry with per-item keys: a repeat stores nothing new; a key reused for another request fails that item alone", async () => {
    const items = Array.from({ length: 20 }, (_, i) => email("retry", i, {}, `retry-${i}`));
    const first = await client.createBatch({ items });
    expect(errors(first)).toEqual([]);
    const again = await client.createBatch({ items });
    expect(again.results.map((r) => r.result.case === "notification" && r.result.value.id)).toEqual(first.results.map((r) => r.result.case === "notification" && r.result.value.id));
    expect(await stored("retry")).toBe(20);

    // Within one batch: the same request twice under one key is one notification; another request under a used key is ALREADY_EXISTS.
    const mixed = await client.createBatch({
      items: [
        email("retry", 100, {}, "retry-pair"),
        email("retry", 100, {}, "retry-pair"),
        email("retry", 101, {}, "retry-3"),
      ],
    });
    const [a, b] = mixed.results.map((r) => (r.result.case === "notification" ? r.result.value.id : undefined));
    expect(a).toBeDefined();
    expect(b).toBe(a);
    expect(errors(mixed)).toEqual([
      { i: 2, code: Code.AlreadyExists, message: "items[2].create.idempotency_key: already used for a different request; use a new key for a new notification" },
    ]);
    expect(await stored("retry")).toBe(21);
  });

  it("takes Schedule and Notify items beside Create ones, over Connect, each answered as its own RPC would", async () => {
    const recipients = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_A });
    await recipients.putRecipient({ recipient: { userId: "batch-ada", email: "ada@example.com", phone: "+14155550199" } });
    await recipients.setPreferences({ preferences: { userId: "batch-ada", optedOutChannels: [Channel.SMS] } });
    recipients.close();
    const connect = createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [bearer(KEY_A)] }));
    const later = new Date(Date.now() + 3_600_000);

    const res = await connect.createBatch({
      items: [
        email("mixed", 0),
        { item: { case: "schedule", value: { notification: spec("mixed", 1), when: { case: "deliverAt", value: timestampFromDate(later) } } } },
        { item: { case: "notify", value: { userId: "batch-ada", channels: [Channel.EMAIL, Channel.SMS], body: { case: "content", value: { text: "Hi" } }, labels: { batch: "mixed" } } } },
        { item: { case: "notify", value: { userId: "nobody", body: { case: "content", value: { text: "Hi" } } } } },
        { item: { case: "schedule", value: { notification: spec("mixed", 4) } } },
        { item: { case: undefined } },
      ],
    });

    expect(res.results[0]!.result).toMatchObject({ case: "notification", value: { status: Status.QUEUED } });
    expect(res.results[1]!.result).toMatchObject({ case: "notification", value: { status: Status.SCHEDULED } });
    const notify = res.results[2]!.result;
    expect(notify.case).toBe("notify");
    if (notify.case === "notify") {
      expect(notify.value.notifications.map((n) => [n.channel, n.notifyId])).toEqual([[Channel.EMAIL, notify.value.notifyId]]);
      expect(notify.value.skipped.map((s) => [s.channel, s.reason])).toEqual([[Channel.SMS, SkipReason.OPTED_OUT]]);
    }
    expect(errors(res)).toEqual([
      { i: 3, code: Code.NotFound, message: 'items[3].notify.user_id: no recipient "nobody" in this tenant: store one with PutRecipient first' },
      { i: 4, code: Code.InvalidArgument, message: "items[4].schedule.when: set deliver_at or local_time" },
      { i: 5, code: Code.InvalidArgument, message: "items[5]: is required: set create, schedule or notify" },
    ]);
    expect(await stored("mixed")).toBe(3);
  });

  it("refuses an empty batch and one of more than 1,000 items whole, storing nothing", async () => {
    expect(await rejection(client.createBatch({ items: [] }))).toEqual({ code: "InvalidArgument", message: "items: must hold at least one item" });
    const tooMany = Array.from({ length: 1001 }, (_, i) => email("toomany", i));
    expect(await rejection(client.createBatch({ items: tooMany }))).toEqual({ code: "InvalidArgument", message: "items: must hold at most 1000 items, got 1001" });
    expect(await stored("toomany")).toBe(0);
  });

  it("herald send --batch: a JSON Lines file of 1,203 requests goes in two calls, one result per line in the file's order", async () => {
    const dir = await mkdtemp(join(tmpdir(), "herald-batch-"));
    const file = join(dir, "sends.jsonl");
    const line = (i: number) =>
      i === 7
        ? JSON.stringify({ notification: { channel: "CHANNEL_SMS", recipient: { userId: "cli", phone: "12345" }, content: { text: "x" }, labels: { batch: "cli" } } })
        : i % 2 === 0
          ? JSON.stringify({ notification: { channel: "CHANNEL_EMAIL", recipient: { userId: `cli-${i}`, email: `cli.${i}@example.com` }, content: { text: `n ${i}` }, labels: { batch: "cli" } } })
          : JSON.stringify({ create: { idempotencyKey: `cli-${i}`, notification: { channel: "CHANNEL_EMAIL", recipient: { userId: `cli-${i}`, email: `cli.${i}@example.com` }, content: { text: `n ${i}` }, labels: { batch: "cli" } } } });
    await writeFile(file, Array.from({ length: 1203 }, (_, i) => line(i)).join("\n") + "\n\n");
    let out = "";
    let err = "";
    const counts = await sendBatchFile(client, file, { out: { write: (c: string) => (out += c) }, err: { write: (c: string) => (err += c) } });

    expect(counts).toEqual({ stored: 1202, refused: 1 });
    expect(err).toBe("1202 stored, 1 refused\n");
    const results = out.trim().split("\n").map((l) => JSON.parse(l) as { notification?: { recipient: { email?: string } }; error?: { code: number; message: string } });
    expect(results).toHaveLength(1203);
    expect(results[7]!.error).toEqual({ code: Code.InvalidArgument, message: "items[7].create.notification.recipient.phone: must be an E.164 number like +14155550100" });
    expect(results[1202]!.notification?.recipient.email).toBe("cli.1202@example.com");
    expect(await stored("cli")).toBe(1202);

    await writeFile(file, '{"create": {"notification": {"channel": "CHANNEL_FAX"}}}\n');
    await expect(sendBatchFile(client, file, { out: { write: () => 0 }, err: { write: () => 0 } })).rejects.toBeInstanceOf(UsageError);
  });
});

