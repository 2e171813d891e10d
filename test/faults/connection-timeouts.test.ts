import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { watch, type Watcher } from "../support/watch.js";
import { waitFor } from "../support/wait.js";
import {
  H2_HEADERS,
  H2_PARTIAL_HEADER_BLOCK,
  H2_PREFACE,
  H2_SETTINGS,
  h2Frame,
  rawConnect,
  serverSideSockets,
  type RawSocket,
  listenerPorts,
} from "../support/raw-sockets.js";

// Both listeners free the sockets of clients that connect and then stall (issue 13, items 2
// and 9): a slow-loris HTTP/1.1 request, a connection that never says which protocol it speaks,
// an HTTP/2 connection with no call, one left in the middle of a header block. Timeouts are
// small here so the test is short; a live WatchStatus stream, whose heartbeats come less often
// than the idle timeout, must outlive it on both listeners.

const HEADERS_MS = 500;
const SNIFF_MS = 500;
const IDLE_MS = 1000;
const HEARTBEAT_MS = 2500;
const SOCKETS = 20;

let herald: TestHerald;
let ports: { http: number; grpc: number };

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server"],
    env: {
      HERALD_HEADERS_TIMEOUT_MS: String(HEADERS_MS),
      HERALD_REQUEST_TIMEOUT_MS: String(HEADERS_MS),
      HERALD_SNIFF_TIMEOUT_MS: String(SNIFF_MS),
      HERALD_IDLE_TIMEOUT_MS: String(IDLE_MS),
      HERALD_WATCH_HEARTBEAT_MS: String(HEARTBEAT_MS),
    },
  });
  ports = listenerPorts(herald);
});
afterAll(async () => {
  await herald?.stop();
});

async function many(n: number, open: () => Promise<RawSocket>): Promise<RawSocket[]> {
  return Promise.all(Array.from({ length: n }, open));
}

describe("connection timeouts", { timeout: 120_000 }, () => {
  it("closes HTTP/1.1 requests whose headers never finish (slow-loris), answering 408", async () => {
    const sockets = await many(SOCKETS, async () => {
      const s = await rawConnect(ports.http);
      s.socket.write("GET /healthz HTTP/1.1\r\nHost: herald\r\n");
      // Trickles a header line every 100 ms: never idle, never done.
      const trickle = setInterval(() => s.socket.write(`x-slow: ${Date.now()}\r\n`), 100);
      void s.closed.then(() => clearInterval(trickle));
      return s;
    });
    await Promise.all(sockets.map((s) => s.closed));
    for (const s of sockets) expect(s.received().toString("latin1")).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("closes connections that send fewer bytes than the protocol sniffing needs", async () => {
    const sockets = await many(SOCKETS, async () => {
      const s = await rawConnect(ports.http);
      s.socket.write("GE");
      return s;
    });
    await Promise.all(sockets.map((s) => s.closed));
    for (const s of sockets) expect(s.received().length).toBe(0);
  });

  it.each([
    ["http (h2c)", () => `http://127.0.0.1:${ports.http}`],
    ["grpc", () => `http://127.0.0.1:${ports.grpc}`],
  ])("says GOAWAY(NO_ERROR) to an HTTP/2 connection with no stream for the idle timeout: %s", async (_name, url) => {
    const session = http2.connect(url());
    session.on("error", () => undefined);
    const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
    await new Promise<void>((resolve) => session.once("connect", () => resolve()));
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await closed;
  });

  it.each([
    ["http", () => ports.http],
    ["grpc", () => ports.grpc],
  ])("frees a connection left in the middle of a header block, half-closed or held open: %s", async (_name, port) => {
    const halfClosed = await rawConnect(port());
    const clientPort = halfClosed.socket.localPort!;
    const held = await rawConnect(port());
    for (const s of [halfClosed, held]) {
      s.socket.write(Buffer.concat([H2_PREFACE, h2Frame(H2_SETTINGS, 0, 0, Buffer.alloc(0)), h2Frame(H2_HEADERS, 0, 1, H2_PARTIAL_HEADER_BLOCK)]));
    }
    halfClosed.socket.end();
    await held.closed;
    // The server's side of the half-closed one: neither left in CLOSE-WAIT nor still open.
    await waitFor("the server to close its side", async () => {
      const left = (await serverSideSockets(port(), clientPort)).filter((l) => !l.startsWith("TIME-WAIT"));
      return left.length === 0;
    });
    halfClosed.socket.destroy();
  });

  it("keeps a WatchStatus stream open past the idle and request timeouts, on h2c, gRPC and HTTP/1.1, though its heartbeats come less often", async () => {
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${KEY_A}`);
      return next(req);
    };
    const connect = (httpVersion: "1.1" | "2") => createClient(NotificationService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion, interceptors: [auth] }));
    const watchers: Watcher[] = [
      watch(connect("2"), { selector: { case: "userId", value: "idle-h2c" } }),
      watch(herald.client(), { selector: { case: "userId", value: "idle-grpc" } }),
      // Over HTTP/1.1 the request timeout (HEADERS_MS) must not cut it either: only receiving the request counts.
      watch(connect("1.1"), { selector: { case: "userId", value: "idle-http1" } }),
    ];
    const heartbeats = (w: Watcher) => w.messages.filter((m) => m.kind.case === "heartbeat").length;
    try {
      // The first heartbeat marks "caught up"; three more span 3 x HEARTBEAT_MS, over 7 idle timeouts.
      await Promise.all(watchers.map((w) => w.until("four heartbeats", (x) => heartbeats(x) >= 4, 60_000)));
    } finally {
      for (const w of watchers) w.stop();
    }
  });
});
