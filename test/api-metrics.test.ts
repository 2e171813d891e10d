import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import * as grpc from "@grpc/grpc-js";
import { toBinary, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { CreateRequestSchema, NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { rise, scrape, valueOf, type Scrape } from "./support/metrics.js";
import type { LogLine } from "./support/router.js";
import { watch } from "./support/watch.js";
import { waitFor } from "./support/wait.js";

// The API's metrics, access log and x-request-id on a real Herald (PostgreSQL, Kafka), on both
// listeners: every assertion is a value after a known workload, read from a real GET /metrics.

let herald: TestHerald;
const logs: LogLine[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  // The relay carries status events to herald.status, which WatchStatus streams read.
  herald = await startTestHerald({ roles: ["server", "relay"], log: pino({ level: "info" }, sink) });
});
afterAll(async () => {
  await herald?.stop();
});

const SERVICE = "herald.v1.NotificationService";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Listener = "grpc" | "http";
const other = (l: Listener): Listener => (l === "grpc" ? "http" : "grpc");

function clientOn(listener: Listener, apiKey = KEY_A): Client<typeof NotificationService> {
  if (listener === "grpc") return herald.client(apiKey);
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  return createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "2", interceptors: [auth] }));
}

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}

const failed = (p: Promise<unknown>): Promise<Code | "OK"> =>
  p.then(
    () => "OK" as const,
    (err: unknown) => ConnectError.from(err).code,
  );

const rpcLines = (requestId: string) => logs.filter((l) => l.msg === "rpc" && l.requestId === requestId);

describe.each(["grpc", "http"] as const)("on the %s listener", (listener) => {
  const rpc = (method: string, code: string) => ({ listener, service: SERVICE, method, code });

  it("counts every finished call once with its final code, and times the unary ones", async () => {
    const client = clientOn(listener);
    const before = await scrape(herald.httpUrl);
    for (let i = 0; i < 10; i++) await client.create({ notification: email(`count-${listener}-${i}`) });
    // No channel: INVALID_ARGUMENT naming the field.
    const invalid = await Promise.all(Array.from({ length: 3 }, () => failed(client.create({ notification: { ...email("x"), channel: Channel.UNSPECIFIED } }))));
    expect(invalid).toEqual([Code.InvalidArgument, Code.InvalidArgument, Code.InvalidArgument]);
    expect(await failed(clientOn(listener, "not-a-key").create({ notification: email("x") }))).toBe(Code.Unauthenticated);
    const after = await scrape(herald.httpUrl);

    expect(rise(before, after, "herald_rpc_requests_total", rpc("Create", "ok"))).toBe(10);
    expect(rise(before, after, "herald_rpc_requests_total", rpc("Create", "invalid_argument"))).toBe(3);
    expect(rise(before, after, "herald_rpc_requests_total", rpc("Create", "unauthenticated"))).toBe(1);
    expect(rise(before, after, "herald_rpc_duration_seconds_count", { listener, service: SERVICE, method: "Create" })).toBe(14);
    // Labelled by the listener that served them: the other one saw none.
    expect(rise(before, after, "herald_rpc_requests_total", { ...rpc("Create", "ok"), listener: other(listener) })).toBe(0);
  });

  it("counts new notifications as accepted, not idempotent replays; batch sizes sum to the requests committed", async () => {
    const client = clientOn(listener);
    const run = randomBytes(4).toString("hex");
    const before = await scrape(herald.httpUrl);
    const requests = Array.from({ length: 10 }, (_, i) => ({ notification: email(`acc-${run}-${i}`), idempotencyKey: `acc-${run}-${i}` }));
    const first = await Promise.all(requests.map((r) => client.create(r)));
    // The same requests again: answered from the stored rows.
    const replays = await Promise.all(requests.slice(0, 5).map((r) => client.create(r)));
    expect(replays.map((r) => r.notification?.id)).toEqual(first.slice(0, 5).map((r) => r.notification?.id));
    await client.schedule({ notification: email(`acc-${run}-s`), when: { case: "deliverAt", value: timestampFromMs(Date.now() + 3_600_000) } });
    const after = await scrape(herald.httpUrl);

    expect(rise(before, after, "herald_accepted_total", { channel: "email", method: "create" })).toBe(10);
    expect(rise(before, after, "herald_accepted_total", { channel: "email", method: "schedule" })).toBe(1);
    expect(rise(before, after, "herald_accepted_total", { channel: "sms", method: "create" })).toBe(0);
    expect(rise(before, after, "herald_accept_batch_size_sum")).toBe(16);
    const transactions = rise(before, after, "herald_accept_batch_size_count");
    expect(transactions).toBeGreaterThanOrEqual(3); // the first ten, the replays, the Schedule: three rounds at least
    expect(rise(before, after, "herald_accept_flush_seconds_count")).toBe(transactions);
    expect(rise(before, after, "herald_rpc_requests_total", rpc("Create", "ok"))).toBe(15);
    expect(valueOf(after, "herald_accept_queue_depth")).toBe(0);
  });

  it("logs one access line per call, with its request id, tenant, code and duration", async () => {
    const client = clientOn(listener);
    const id = (what: string) => `log-${listener}-${what}-${randomBytes(4).toString("hex")}`;
    const ok = id("ok");
    const invalid = id("invalid");
    const anonymous = id("anon");
    await client.create({ notification: email("log") }, { headers: { "x-request-id": ok } });
    await failed(client.create({ notification: { ...email("log"), channel: Channel.UNSPECIFIED } }, { headers: { "x-request-id": invalid } }));
    await failed(clientOn(listener, "not-a-key").create({ notification: email("log") }, { headers: { "x-request-id": anonymous } }));

    await waitFor("the three access lines", () => [ok, invalid, anonymous].every((r) => rpcLines(r).length > 0));
    const [line] = rpcLines(ok);
    expect(rpcLines(ok)).toHaveLength(1);
    expect(line).toMatchObject({ level: 30, listener, service: SERVICE, method: "Create", code: "ok", requestId: ok, tenant: "tenant-a" });
    expect(typeof line!.durationMs).toBe("number");
    expect(line!.durationMs as number).toBeGreaterThanOrEqual(0);
    expect(rpcLines(invalid)).toEqual([expect.objectContaining({ code: "invalid_argument", tenant: "tenant-a", listener })]);
    const [anon] = rpcLines(anonymous);
    expect(rpcLines(anonymous)).toHaveLength(1);
    expect(anon).toMatchObject({ code: "unauthenticated", listener, method: "Create" });
    expect(anon).not.toHaveProperty("tenant");
  });

  it("keeps a WatchStatus stream's count while it is open, counts the events written, and logs it once", async () => {
    const user = `watch-${listener}-${randomBytes(4).toString("hex")}`;
    const requestId = `watch-${user}`;
    const before = await scrape(herald.httpUrl);
    const client = clientOn(listener);
    const w = watchWithId(client, user, requestId);
    // The heartbeat that says "caught up": the stream is open and subscribed.
    await w.until("caught up", (x) => x.messages.some((m) => m.kind.case === "heartbeat"));
    expect(valueOf(await scrape(herald.httpUrl), "herald_watch_streams")).toBe(1);

    for (let i = 0; i < 3; i++) await client.create({ notification: email(user) });
    await w.until("three events", (x) => x.events().length === 3);
    await waitFor("three events counted", async () => rise(before, await scrape(herald.httpUrl), "herald_watch_events_sent_total") === 3 || undefined);

    w.stop();
    await w.ended;
    const after = await waitFor("the stream closed", async () => {
      const s = await scrape(herald.httpUrl);
      return valueOf(s, "herald_watch_streams") === 0 && rise(before, s, "herald_rpc_requests_total", rpc("WatchStatus", "canceled")) === 1 && s;
    });
    expect(rise(before, after, "herald_watch_events_sent_total")).toBe(3);
    expect(rise(before, after, "herald_watch_events_dropped_total", { reason: "buffer_full" })).toBe(0);
    // A stream lasts as long as its client watches: not a latency.
    expect(valueOf(after, "herald_rpc_duration_seconds_count", { listener, service: SERVICE, method: "WatchStatus" })).toBe(0);
    expect(rpcLines(requestId)).toEqual([expect.objectContaining({ method: "WatchStatus", code: "canceled", listener, tenant: "tenant-a" })]);
  });
});

describe.each(["grpc", "http"] as const)("Health/Watch on the %s listener", (listener) => {
  it("counts a watch when it ends, with no latency", async () => {
    const transport = listener === "grpc" ? createGrpcTransport({ baseUrl: `http://${herald.grpcAddress}` }) : createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "2" });
    const health = createClient(Health, transport);
    const labels = { listener, service: "grpc.health.v1.Health", method: "Watch" };
    const before = await scrape(herald.httpUrl);
    const abort = new AbortController();
    const statuses = health.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    await statuses.next(); // SERVING: the watch is open
    expect(rise(before, await scrape(herald.httpUrl), "herald_rpc_requests_total", { ...labels, code: "canceled" })).toBe(0);
    abort.abort();
    await statuses.next().catch(() => undefined);
    const after = await waitFor("the watch counted", async () => {
      const s = await scrape(herald.httpUrl);
      return rise(before, s, "herald_rpc_requests_total", { ...labels, code: "canceled" }) === 1 && s;
    });
    expect(valueOf(after, "herald_rpc_duration_seconds_count", labels)).toBe(0);
  });
});

function watchWithId(client: Client<typeof NotificationService>, user: string, requestId: string) {
  // watch() sends no headers; a client whose every call carries the id stands in.
  const withId = { watchStatus: (req: Parameters<typeof client.watchStatus>[0], opts?: Parameters<typeof client.watchStatus>[1]) =>
    client.watchStatus(req, { ...opts, headers: { "x-request-id": requestId } }) };
  return watch(withId, { selector: { case: "userId", value: user } });
}

describe("x-request-id", () => {
  /** One unary Create over raw grpc-js, with the initial metadata it answered. */
  function grpcCreate(metadata: Record<string, string>, body = create(CreateRequestSchema, { notification: email("rid") })) {
    const address = herald.grpcAddress;
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    return new Promise<{ requestId: string | undefined; code: number }>((resolve) => {
      let requestId: string | undefined;
      const call = client.makeUnaryRequest(
        `/${SERVICE}/Create`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(toBinary(CreateRequestSchema, body)),
        md,
        (err) => {
          client.close();
          resolve({ requestId, code: err ? err.code : 0 });
        },
      );
      call.on("metadata", (m: grpc.Metadata) => (requestId = m.get("x-request-id")[0] as string | undefined));
    });
  }

  /** One Create over the Connect protocol (HTTP/1.1, JSON), with the x-request-id header it answered. */
  async function connectCreate(headers: Record<string, string>, notification: unknown = { channel: "CHANNEL_EMAIL", recipient: { userId: "rid", email: "ada@example.com" }, content: { subject: "Hi", text: "Hello" } }) {
    const res = await fetch(`${herald.httpUrl}/${SERVICE}/Create`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ notification }),
    });
    await res.arrayBuffer();
    return { requestId: res.headers.get("x-request-id") ?? undefined, status: res.status };
  }

  const auth = { authorization: `Bearer ${KEY_A}` };

  it("gRPC listener: echoes a valid id in the initial metadata, on success and on errors, else sends the one it made", async () => {
    expect(await grpcCreate({ ...auth, "x-request-id": "caller-id-1" })).toEqual({ requestId: "caller-id-1", code: 0 });
    expect(await grpcCreate({ "x-request-id": "caller-id-2" })).toEqual({ requestId: "caller-id-2", code: Code.Unauthenticated });
    const invalidBody = create(CreateRequestSchema, { notification: { ...email("rid"), channel: Channel.UNSPECIFIED } });
    expect(await grpcCreate({ ...auth, "x-request-id": "caller-id-3" }, invalidBody)).toEqual({ requestId: "caller-id-3", code: Code.InvalidArgument });

    const made = await grpcCreate(auth);
    expect(made.requestId).toMatch(UUID);
    // A header that is not a valid id (a space; over 128 characters) is replaced, not echoed.
    expect((await grpcCreate({ ...auth, "x-request-id": "has space" })).requestId).toMatch(UUID);
    expect((await grpcCreate({ ...auth, "x-request-id": "x".repeat(129) })).requestId).toMatch(UUID);
    // The id sent back is the one logged.
    await waitFor("the access line of the made id", () => rpcLines(made.requestId!).length === 1);
  });

  it("HTTP listener: echoes a valid id as a response header, on success and on errors, else sends the one it made", async () => {
    expect(await connectCreate({ ...auth, "x-request-id": "caller-id-4" })).toEqual({ requestId: "caller-id-4", status: 200 });
    expect(await connectCreate({ "x-request-id": "caller-id-5" })).toEqual({ requestId: "caller-id-5", status: 401 });
    expect(await connectCreate({ ...auth, "x-request-id": "caller-id-6" }, { channel: "CHANNEL_UNSPECIFIED" })).toEqual({ requestId: "caller-id-6", status: 400 });
    // gRPC-Web (HTTP/1.1) and gRPC (h2c) through connect's clients: the same header, on success and on errors.

    const protocols = {
      "grpc-web": (interceptors: Interceptor[]) => createGrpcWebTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors }),
      grpc: (interceptors: Interceptor[]) => createGrpcTransport({ baseUrl: herald.httpUrl, interceptors }),
    };
    for (const [name, transport] of Object.entries(protocols)) {
      let answered: string | null = null;
      const capture: Interceptor = (next) => async (req) => {
        req.header.set("authorization", `Bearer ${KEY_A}`);
        try {
          const res = await next(req);
          answered = res.header.get("x-request-id");
          return res;
        } catch (err) {
          answered = ConnectError.from(err).metadata.get("x-request-id");
          throw err;
        }
      };
      const client = createClient(NotificationService, transport([capture]));
      await client.create({ notification: email("rid") }, { headers: { "x-request-id": `${name}-ok` } });
      expect(answered, name).toBe(`${name}-ok`);
      const bad = { notification: { ...email("rid"), channel: Channel.UNSPECIFIED } };
      expect(await failed(client.create(bad, { headers: { "x-request-id": `${name}-bad` } }))).toBe(Code.InvalidArgument);
      expect(answered, name).toBe(`${name}-bad`);
    }

    const made = await connectCreate(auth);
    expect(made.requestId).toMatch(UUID);
    expect((await connectCreate({ ...auth, "x-request-id": "has space" })).requestId).toMatch(UUID);
    await waitFor("the access line of the made id", () => rpcLines(made.requestId!).length === 1);
    expect(rpcLines(made.requestId!)[0]).toMatchObject({ listener: "http", code: "ok" });
  });
});

describe("HERALD_ACCESS_LOG=off", () => {
  let quiet: TestHerald;
  const quietLogs: LogLine[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString("utf8").split("\n")) if (line) quietLogs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    quiet = await startTestHerald({ roles: ["server"], env: { HERALD_ACCESS_LOG: "off" }, log: pino({ level: "info" }, sink) });
  });
  afterAll(async () => {
    await quiet?.stop();
  });

  it("logs no line per call on either listener, and still counts them", async () => {
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${KEY_A}`);
      return next(req);
    };
    const http = createClient(NotificationService, createConnectTransport({ baseUrl: quiet.httpUrl, httpVersion: "2", interceptors: [auth] }));
    const before = await scrape(quiet.httpUrl);
    for (const client of [quiet.client(KEY_A), http]) {
      await client.create({ notification: email("quiet") });
      expect(await failed(client.create({ notification: { ...email("quiet"), channel: Channel.UNSPECIFIED } }))).toBe(Code.InvalidArgument);
    }
    const after = await scrape(quiet.httpUrl);
    // Each line would have been written before its call was answered: none came.
    for (const listener of ["grpc", "http"]) {
      expect(rise(before, after, "herald_rpc_requests_total", { listener, service: SERVICE, method: "Create", code: "ok" })).toBe(1);
    }
    expect(quietLogs.filter((l) => l.msg === "rpc")).toEqual([]);
    // The logger itself works: the server said it was listening.
    expect(quietLogs.some((l) => l.msg === "herald server listening")).toBe(true);
  });
});

describe("GET /metrics on the HTTP listener", () => {
  it("exports every api metric of the catalogue with its type", async () => {
    const s: Scrape = await scrape(herald.httpUrl);
    expect(Object.fromEntries([...s.types].filter(([name]) => API_METRICS.includes(name)))).toEqual({
      herald_rpc_requests_total: "counter",
      herald_rpc_duration_seconds: "histogram",
      herald_accepted_total: "counter",
      herald_accept_batch_size: "histogram",
      herald_accept_flush_seconds: "histogram",
      herald_accept_queue_depth: "gauge",
      herald_admission_rejected_total: "counter",
      herald_watch_streams: "gauge",
      herald_watch_events_sent_total: "counter",
      herald_watch_events_dropped_total: "counter",
    });
    // Every refusal reason is a series from the start, at its count so far.
    for (const reason of ["queue_full", "deadline", "event_loop_lag", "abandoned"]) {
      expect(s.samples.has(`herald_admission_rejected_total{reason="${reason}"}`)).toBe(true);
    }
  });
});

const API_METRICS = [
  "herald_rpc_requests_total",
  "herald_rpc_duration_seconds",
  "herald_accepted_total",
  "herald_accept_batch_size",
  "herald_accept_flush_seconds",
  "herald_accept_queue_depth",
  "herald_admission_rejected_total",
  "herald_watch_streams",
  "herald_watch_events_sent_total",
  "herald_watch_events_dropped_total",
];
