import { randomBytes } from "node:crypto";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../gen/herald/v1/notification_pb.js";
import { NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { createCursorCodec } from "../src/domain/cursor.js";
import { RESUME_CURSOR_HEADER } from "../src/server/handlers/watch-status.js";
import { loadCursorKey } from "../src/store/cursor-key.js";
import { FAST } from "./e2e/support.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { allSent, createSms, expectCode, instantProvider, watch, type Watcher } from "./support/watch.js";

// WatchStatus over every way in: grpc-js (internal clients), and on the HTTP listener Connect
// over HTTP/1.1 (browsers' fetch) and h2c, gRPC-Web, and gRPC. Each stream must carry the same
// events, and end with UNAVAILABLE plus the resume cursor when its server shuts down.

let herald: TestHerald;
let api: TestHerald;

const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${KEY_A}`);
  return next(req);
};

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["relay", "scheduler", "worker"], providers: { sms: instantProvider() }, env: { ...FAST } });
  api = await startTestHerald({ roles: ["server"], db: herald.db, topicPrefix: herald.topicPrefix, env: { ...FAST } });
});
afterAll(async () => {
  await api?.stop();
  await herald?.stop();
});

const opened = (w: Watcher) => w.messages.some((m) => m.kind.case === "heartbeat");

describe("WatchStatus on every listener", () => {
  it("delivers the same events over grpc-js, Connect (HTTP/1.1, h2c), gRPC-Web and gRPC, and ends UNAVAILABLE with a cursor on shutdown", async () => {
    const baseUrl = api.httpUrl;
    const clients = {
      "grpc-js": api.client(),
      "connect http/1.1": createClient(NotificationService, createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] })),
      "connect h2c": createClient(NotificationService, createConnectTransport({ baseUrl, httpVersion: "2", interceptors: [auth] })),
      "grpc-web http/1.1": createClient(NotificationService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] })),
      "grpc h2c (http listener)": createClient(NotificationService, createGrpcTransport({ baseUrl, interceptors: [auth] })),
    };
    const recipient = `p-${randomBytes(6).toString("hex")}`;
    const watchers = Object.entries(clients).map(([name, client]) => ({ name, w: watch(client, { selector: { case: "userId", value: recipient } }) }));
    for (const { w } of watchers) await w.until("caught up", opened);
    const id = await createSms(api.client(), recipient);
    for (const { name, w } of watchers) {
      await w.until(`${name}: SENT`, (x) => allSent(x, [id]));
      expect(w.events().map((e) => Status[e.status]), name).toEqual(["QUEUED", "SENDING", "SENT"]);
    }
    // Cursors are sealed afresh each time: compare the positions they name.
    const cursors = createCursorCodec(await loadCursorKey(api.db.pool));
    await api.stop();
    for (const { name, w } of watchers) {
      const err = expectCode(await w.ended, Code.Unavailable);
      expect(err.rawMessage, name).toContain("server shutting down");
      expect(cursors.decode("tenant-a", err.metadata.get(RESUME_CURSOR_HEADER)!), name).toBe(cursors.decode("tenant-a", w.lastCursor()));
    }
  });
});
