import { connect } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, createHeraldClient, createRecipientClient, type HeraldClient } from "../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "./support/db.js";
import { SpanKindCode, startOtlpCollector, type CollectedSpan, type OtlpCollector } from "./support/otlp-collector.js";
import { heraldSite, outputTail, REPO, spawnHerald, stopAll, type HeraldProcess, type HeraldSite } from "./support/processes.js";
import { fail } from "./support/stand-ins/behaviour.js";
import { startTwilioStandIn, type TwilioStandIn } from "./support/stand-ins/twilio.js";
import { waitFor } from "./support/wait.js";

// Traces as an operator sees them: server, relay, scheduler and an email worker as four processes
// from dist/ (the SDK registers process-wide state, so never inside the test process), exporting
// OTLP/HTTP protobuf to a collector stand-in. One notification's life must be one trace, across
// the processes, through PostgreSQL and Kafka.

const PROBE = `--import=${REPO}/test/support/otel-module-probe.mjs`;
const CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN = "00f067aa0ba902b7";

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}

const CREATE_JSON = JSON.stringify({
  notification: { channel: "CHANNEL_EMAIL", recipient: { userId: "u-http", email: "ada@example.com" }, content: { subject: "Hi", text: "Hello" } },
});

/** A Connect JSON Create over HTTP/2 (h2c, prior knowledge): the notification id it answered. */
async function createOverHttp2(baseUrl: string, headers: Record<string, string>): Promise<string> {
  const session = connect(baseUrl);
  try {
    const req = session.request({ ":method": "POST", ":path": "/herald.v1.NotificationService/Create", "content-type": "application/json", ...headers });
    req.end(CREATE_JSON);
    let body = "";
    req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    await new Promise((resolve, reject) => req.on("end", resolve).on("error", reject));
    return (JSON.parse(body) as { notification: { id: string } }).notification.id;
  } finally {
    session.close();
  }
}

afterAll(() => stopAll("SIGKILL", 5_000));

describe("tracing on: OTEL_EXPORTER_OTLP_ENDPOINT set", { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let site: HeraldSite;
  let collector: OtlpCollector;
  let roles: HeraldProcess[];
  let server: HeraldProcess;
  let worker: HeraldProcess;
  let client: HeraldClient;
  let twilio: TwilioStandIn;

  beforeAll(async () => {
    collector = await startOtlpCollector();
    twilio = await startTwilioStandIn({ accountSid: "AC-trace", authToken: "token" });
    db = await createTestDatabase("herald_trace");
    site = await heraldSite(db.url);
    const env = site.env({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      // Export within 100 ms instead of 5 s, so the test waits on spans, not on the batch timer.
      OTEL_BSP_SCHEDULE_DELAY: "100",
      HERALD_EMAIL_PROVIDER: "sink",
      HERALD_SCHEDULER_POLL_MS: "100",
      NODE_OPTIONS: PROBE,
    });
    server = spawnHerald("server", env);
    const relay = spawnHerald("relay", env);
    const scheduler = spawnHerald("scheduler", env);
    worker = spawnHerald("worker", env, "worker", ["--channel", "email"]);
    // SMS through the Twilio stand-in, which a test makes fail once: a retry within ~100 ms.
    const smsEnv = {
      ...env,
      HERALD_SMS_PROVIDER: "twilio",
      TWILIO_BASE_URL: twilio.url,
      TWILIO_ACCOUNT_SID: "AC-trace",
      TWILIO_AUTH_TOKEN: "token",
      HERALD_SMS_FROM: "+14155550000",
      HERALD_BACKOFF_BASE_MS: "50",
      HERALD_BACKOFF_CAP_MS: "100",
    };
    const smsWorker = spawnHerald("worker", smsEnv, "worker-sms", ["--channel", "sms"]);
    roles = [server, relay, scheduler, worker, smsWorker];
    await Promise.all([
      server.waitForLog("herald server listening", 90_000),
      relay.waitForLog("relay is the leader", 90_000),
      worker.waitForLog("worker consuming", 90_000),
      smsWorker.waitForLog("worker consuming", 90_000),
    ]);
    client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
  });

  afterAll(async () => {
    client?.close();
    await Promise.all((roles ?? []).map((p) => p.stop("SIGTERM", 20_000)));
    await db?.drop();
    await collector?.close();
    await twilio?.close();
  });

  /** The spans of the trace whose herald.accept names notification `id`, once `done` holds for them. */
  async function traceOf(id: string, done: (spans: CollectedSpan[]) => boolean): Promise<CollectedSpan[]> {
    return waitFor(`the trace of ${id}`, () => {
      const accept = collector.spans().find((s) => s.name === "herald.accept" && s.attributes["herald.notification_id"] === id);
      if (!accept) return undefined;
      const spans = collector.spans().filter((s) => s.traceId === accept.traceId);
      return done(spans) ? spans : undefined;
    }, { timeoutMs: 60_000 });
  }

  const one = (spans: CollectedSpan[], name: string, kind: number): CollectedSpan => {
    const found = spans.filter((s) => s.name === name && s.kind === kind);
    expect(found, `${name}: ${JSON.stringify(spans.map((s) => s.name))}`).toHaveLength(1);
    return found[0]!;
  };

  const orphansOf = (spans: CollectedSpan[]): CollectedSpan[] => {
    const ids = new Set(spans.map((s) => s.spanId));
    return spans.filter((s) => !ids.has(s.parentSpanId));
  };

  // Each process exports on its own batch timer, so the worker's "sent" can reach the collector before the
  // relay's publish span or the server's RPC span: wait until the sent outcome is in and the spans form one
  // tree (a single root), not just for the outcome.
  const delivered = (spans: CollectedSpan[]) =>
    spans.some((s) => s.name === "herald.status" && s.attributes["herald.status"] === "sent") && orphansOf(spans).length === 1;

  /** Every span's parent is in the trace, except the root's (the caller's span, or none). */
  function expectOneTree(spans: CollectedSpan[], rootParent: string): void {
    expect(orphansOf(spans).map((s) => [s.name, s.parentSpanId])).toEqual([[expect.any(String), rootParent]]);
  }

  it("a Create over gRPC continues the caller's traceparent: accept, relay publish, worker claim, provider call and status in one tree", async () => {
    const { notification } = await client.create(
      { notification: email("u-traced") },
      { headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } },
    );
    const id = notification!.id;
    const spans = await traceOf(id, delivered);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([CALLER_TRACE]));

    // The grpc instrumentation's server span continues the caller's; accept is under it.
    const rpc = spans.find((s) => s.kind === SpanKindCode.server && s.parentSpanId === CALLER_SPAN);
    expect(rpc, JSON.stringify(spans.map((s) => [s.name, s.kind]))).toBeDefined();
    expect(rpc!.service).toBe("herald-server");
    const accept = one(spans, "herald.accept", SpanKindCode.internal);
    expect(accept).toMatchObject({ parentSpanId: rpc!.spanId, service: "herald-server" });
    expect(accept.attributes).toMatchObject({ "rpc.method": "Create", "herald.channel": "email", "herald.notification_id": id });
    // The accept's own transaction, seen by the pg instrumentation (through the ESM hook).
    expect(spans.some((s) => s.parentSpanId === accept.spanId && s.name.startsWith("pg.query:herald-accept"))).toBe(true);

    const publish = one(spans, "send herald.email", SpanKindCode.producer);
    expect(publish).toMatchObject({ parentSpanId: accept.spanId, service: "herald-relay" });
    expect(publish.attributes).toMatchObject({ "messaging.system": "kafka", "messaging.destination.name": "herald.email", "herald.attempt": 1 });

    const process = one(spans, "process herald.email", SpanKindCode.consumer);
    expect(process).toMatchObject({ parentSpanId: publish.spanId, service: "herald-worker" });
    expect(process.attributes).toMatchObject({ "messaging.system": "kafka", "herald.notification_id": id, "herald.attempt": 1 });
    // The claim is the worker's first statement, inside its span.
    expect(spans.some((s) => s.parentSpanId === process.spanId && s.name.startsWith("pg.query:"))).toBe(true);

    const send = one(spans, "sink send", SpanKindCode.client);
    expect(send).toMatchObject({ parentSpanId: process.spanId, attributes: { "herald.provider": "sink", "herald.channel": "email" } });
    const status = one(spans, "herald.status", SpanKindCode.internal);
    expect(status).toMatchObject({ parentSpanId: process.spanId, attributes: { "herald.status": "sent" } });
    expectOneTree(spans, CALLER_SPAN);
    // Never a recipient's address in any attribute.
    expect(JSON.stringify(spans)).not.toContain("ada@example.com");
  });

  it("without a caller traceparent a Create starts its own trace, and the worker's lines carry its trace id and correlation id", async () => {
    const { notification } = await client.create({ notification: email("u-fresh") });
    const id = notification!.id;
    const spans = await traceOf(id, delivered);
    const traceId = spans[0]!.traceId;
    expect(traceId).not.toBe(CALLER_TRACE);
    expect(spans.every((s) => s.traceId === traceId)).toBe(true);
    expect(spans.map((s) => s.name)).toEqual(expect.arrayContaining(["herald.accept", "send herald.email", "process herald.email", "sink send"]));
    expectOneTree(spans, "");

    const { rows } = await db.pool.query<{ correlation_id: string; traceparent: string }>(
      "SELECT correlation_id, traceparent FROM notifications WHERE id = $1",
      [id],
    );
    const accept = spans.find((s) => s.name === "herald.accept")!;
    expect(rows[0]!.traceparent).toBe(`00-${traceId}-${accept.spanId}-01`);
    const correlationId = rows[0]!.correlation_id;
    const lines = await waitFor("the worker's sent line", () => {
      const mine = worker.logs().filter((l) => l.notificationId === id);
      return mine.some((l) => l.msg === "sent") ? mine : undefined;
    }, { timeoutMs: 30_000 });
    for (const line of lines) {
      expect(line).toMatchObject({ correlationId, trace_id: traceId });
      expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it("a Schedule's release by the scheduler continues the trace it was accepted in", async () => {
    const at = new Date(Date.now() + 3_000);
    const { notification } = await client.schedule(
      { notification: email("u-later"), when: { case: "deliverAt", value: { seconds: BigInt(Math.floor(at.getTime() / 1000)), nanos: (at.getTime() % 1000) * 1e6 } } },
      { headers: { traceparent: `00-${CALLER_TRACE.replace(/^4/, "5")}-${CALLER_SPAN}-01` } },
    );
    const id = notification!.id;
    const spans = await traceOf(id, delivered);
    expect(spans.every((s) => s.traceId === CALLER_TRACE.replace(/^4/, "5"))).toBe(true);
    const accept = one(spans, "herald.accept", SpanKindCode.internal);
    expect(accept.attributes["rpc.method"]).toBe("Schedule");
    const publish = one(spans, "send herald.email", SpanKindCode.producer);
    expect(publish.parentSpanId).toBe(accept.spanId);
    expect(one(spans, "process herald.email", SpanKindCode.consumer).parentSpanId).toBe(publish.spanId);
    expectOneTree(spans, CALLER_SPAN);
  });

  it("a retry continues the trace: a second publish and attempt under the same accept, the failed provider call marked as an error", async () => {
    twilio.behave([fail(503, { message: "busy" })]);
    const { notification } = await client.create({
      notification: {
        channel: Channel.SMS,
        recipient: { userId: "u-retry", address: { case: "phone" as const, value: "+14155550123" } },
        body: { case: "content" as const, value: { text: "Hello again" } },
      },
    });
    const id = notification!.id;
    const spans = await traceOf(id, delivered);
    const accept = one(spans, "herald.accept", SpanKindCode.internal);
    const publishes = spans.filter((s) => s.name === "send herald.sms" && s.kind === SpanKindCode.producer);
    expect(publishes.map((s) => [s.parentSpanId, s.attributes["herald.attempt"]]).sort()).toEqual([
      [accept.spanId, 1],
      [accept.spanId, 2],
    ]);
    const attempts = spans.filter((s) => s.name === "process herald.sms" && s.kind === SpanKindCode.consumer);
    expect(attempts.map((s) => s.attributes["herald.attempt"]).sort()).toEqual([1, 2]);
    for (const attempt of attempts) {
      const publish = publishes.find((p) => p.spanId === attempt.parentSpanId);
      expect(publish?.attributes["herald.attempt"]).toBe(attempt.attributes["herald.attempt"]);
    }
    const calls = spans.filter((s) => s.name === "twilio send" && s.kind === SpanKindCode.client);
    expect(calls.map((s) => s.status).sort()).toEqual([0, 2]); // unset, error
    const outcomes = spans.filter((s) => s.name === "herald.status").map((s) => s.attributes["herald.status"]);
    expect(outcomes.sort()).toEqual(["retry", "sent"]);
    expectOneTree(spans, "");
    expect(JSON.stringify(spans)).not.toContain("+14155550123");
  });

  it("Connect over HTTP/1.1: the http instrumentation's server span continues the traceparent header, accept under it", async () => {
    const res = await fetch(`${site.httpUrl}/herald.v1.NotificationService/Create`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${site.apiKey}`, traceparent: `00-${CALLER_TRACE.replace(/^4/, "6")}-${CALLER_SPAN}-01` },
      body: CREATE_JSON,
    });
    expect(res.status).toBe(200);
    const id = ((await res.json()) as { notification: { id: string } }).notification.id;
    const spans = await traceOf(id, delivered);
    expect(spans.every((s) => s.traceId === CALLER_TRACE.replace(/^4/, "6"))).toBe(true);
    const http = spans.find((s) => s.kind === SpanKindCode.server && s.parentSpanId === CALLER_SPAN);
    expect(http?.attributes["http.request.method"]).toBe("POST");
    expect(one(spans, "herald.accept", SpanKindCode.internal).parentSpanId).toBe(http!.spanId);
    expectOneTree(spans, CALLER_SPAN);
  });

  it("Connect over HTTP/2 (no http2 instrumentation): herald.accept continues the traceparent header itself", async () => {
    const id = await createOverHttp2(site.httpUrl, { authorization: `Bearer ${site.apiKey}`, traceparent: `00-${CALLER_TRACE.replace(/^4/, "7")}-${CALLER_SPAN}-01` });
    const spans = await traceOf(id, delivered);
    expect(spans.every((s) => s.traceId === CALLER_TRACE.replace(/^4/, "7"))).toBe(true);
    expect(one(spans, "herald.accept", SpanKindCode.internal).parentSpanId).toBe(CALLER_SPAN);
    expectOneTree(spans, CALLER_SPAN);
  });

  it("a Notify and a CreateBatch are one accept span each, and every notification they store is delivered in that trace", async () => {
    const recipients = createRecipientClient({ address: site.grpcAddress, apiKey: site.apiKey });
    try {
      await recipients.putRecipient({ recipient: { userId: "u-notify-traced", email: "grace@example.com" } });
    } finally {
      recipients.close();
    }
    const notified = await client.notify(
      { userId: "u-notify-traced", body: { case: "content", value: { subject: "Hi", text: "Hello" } } },
      { headers: { traceparent: `00-${CALLER_TRACE.replace(/^4/, "8")}-${CALLER_SPAN}-01` } },
    );
    expect(notified.notifications.map((n) => n.channel)).toEqual([Channel.EMAIL]);
    const batch = await client.createBatch({
      items: ["u-batch-1", "u-batch-2"].map((userId) => ({ item: { case: "create" as const, value: { notification: email(userId) } } })),
    });
    const batchIds = batch.results.map((r) => (r.result.case === "notification" ? r.result.value.id : ""));

    for (const [method, ids, key, value] of [
      ["Notify", notified.notifications.map((n) => n.id), "herald.notify_id", notified.notifyId],
      ["CreateBatch", batchIds, "herald.batch_items", 2],
    ] as const) {
      const spans = await waitFor(`the ${method} trace, every notification sent`, () => {
        const accept = collector.spans().find((s) => s.name === "herald.accept" && s.attributes["rpc.method"] === method);
        if (!accept) return undefined;
        const trace = collector.spans().filter((s) => s.traceId === accept.traceId);
        const sent = trace.filter((s) => s.name === "process herald.email" && ids.includes(s.attributes["herald.notification_id"] as string));
        return sent.length === ids.length && trace.filter((s) => s.name === "herald.status" && s.attributes["herald.status"] === "sent").length === ids.length && orphansOf(trace).length === 1
          ? trace
          : undefined;
      }, { timeoutMs: 60_000 });
      const accept = one(spans, "herald.accept", SpanKindCode.internal);
      expect(accept.attributes[key], method).toBe(value);
      const publishes = spans.filter((s) => s.name === "send herald.email" && s.kind === SpanKindCode.producer);
      expect(publishes.map((s) => s.parentSpanId), method).toEqual(ids.map(() => accept.spanId));
      if (method === "Notify") expect(spans.every((s) => s.traceId === CALLER_TRACE.replace(/^4/, "8"))).toBe(true);
    }
    expect(JSON.stringify(collector.spans())).not.toContain("grace@example.com");
  });

  it("the processes loaded the SDK and its instrumentations (the probe below can tell)", async () => {
    await server.stop("SIGTERM", 20_000);
    expect(server.stderr(), outputTail(server)).toMatch(/otel-sdk-modules \[.*"@opentelemetry\/sdk-trace-node".*\]/);
    expect(server.stderr()).toContain('"@opentelemetry/instrumentation-pg"');
  });
});

describe("tracing off: no OTEL_EXPORTER_OTLP_ENDPOINT", { timeout: 120_000 }, () => {
  it("a Herald server loads no SDK module at all, and logs no trace fields", async () => {
    const db = await createTestDatabase("herald_untraced");
    try {
      const site = await heraldSite(db.url);
      const server = spawnHerald("server", site.env({ NODE_OPTIONS: PROBE, OTEL_SDK_DISABLED: "false" }));
      await server.waitForLog("herald server listening", 90_000);
      const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
      try {
        await client.create({ notification: email("u-off") }, { headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } });
      } finally {
        client.close();
      }
      await server.stop("SIGTERM", 20_000);
      expect(server.stderr(), outputTail(server)).toContain("otel-sdk-modules []");
      expect(server.logs().filter((l) => "trace_id" in l)).toEqual([]);
      const { rows } = await db.pool.query("SELECT traceparent FROM notifications");
      expect(rows).toEqual([{ traceparent: null }]);
    } finally {
      await db.drop();
    }
  });
});

describe("graceful shutdown flushes the spans still queued", { timeout: 120_000 }, () => {
  it("with a 10-minute batch delay, the accept span reaches the collector only at SIGTERM, before the exit", async () => {
    const collector = await startOtlpCollector();
    const db = await createTestDatabase("herald_trace_flush");
    try {
      const site = await heraldSite(db.url);
      const server = spawnHerald("server", site.env({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, OTEL_BSP_SCHEDULE_DELAY: "600000" }));
      await server.waitForLog("herald server listening", 90_000);
      const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
      let id: string;
      try {
        id = (await client.create({ notification: email("u-flush") })).notification!.id;
      } finally {
        client.close();
      }
      // Nothing fills a 512-span batch and the timer is 10 minutes away: only shutdown sends.
      expect(collector.requests()).toBe(0);
      const exit = await server.stop("SIGTERM", 20_000);
      expect(exit, outputTail(server)).toEqual({ code: 0, signal: null });
      const accepts = collector.spans().filter((s) => s.name === "herald.accept");
      expect(accepts.map((s) => s.attributes["herald.notification_id"])).toEqual([id]);
      expect(accepts[0]!.service).toBe("herald-server");
    } finally {
      await db.drop();
      await collector.close();
    }
  });
});
