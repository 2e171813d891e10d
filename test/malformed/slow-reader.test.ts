import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { HeraldClient } from "../../src/client/index.js";
import { RESUME_CURSOR_HEADER } from "../../src/server/handlers/watch-status.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { frame } from "../support/raw-rpc.js";
import { waitFor } from "../support/wait.js";

// A WatchStatus client on the gRPC listener that never reads: the server's writes stop at the
// client's flow-control window and the handler is parked at a yield. Once the stream falls
// HERALD_WATCH_BUFFER events behind it must end RESOURCE_EXHAUSTED and give back its slot
// (here the key's only one), rather than hold it for as long as the connection lives.

const BUFFER = 20;
const BURST = 5;
let herald: TestHerald;
let client: HeraldClient;

beforeAll(async () => {
  herald = await startTestHerald({
    roles: ["server", "relay"],
    env: { HERALD_WATCH_BUFFER: String(BUFFER), HERALD_WATCH_MAX_STREAMS_PER_KEY: "1" },
  });
  client = herald.client(KEY_A);
}, 60_000);

afterAll(async () => herald?.stop());

const email = (userId: string) => ({
  channel: Channel.EMAIL,
  recipient: { userId, address: { case: "email" as const, value: `${userId}@example.com` } },
  body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
});

/** Opens a WatchStatus stream of the whole tenant; resolves with its first message's kind, or the code it was refused with. */
async function tryOpen(): Promise<string | Code> {
  const abort = new AbortController();
  try {
    for await (const m of client.watchStatus({}, { signal: abort.signal })) return m.kind.case ?? "none";
    return "ended";
  } catch (err) {
    return ConnectError.from(err).code;
  } finally {
    abort.abort();
  }
}

// The gRPC listener ends the call in-band (the status queued behind what was written); the HTTP
// listener cannot get a status past the queued data, so it resets the stream with
// ENHANCE_YOUR_CALM, which gRPC and Connect clients report as RESOURCE_EXHAUSTED.
it.each(["grpc", "http"] as const)("a stream on the %s listener whose client never reads ends once it is the buffer behind, and frees its slot", async (listener) => {
  // A 256-byte window, never widened while the stream is paused: the server's writes back up.
  const base = listener === "grpc" ? `http://${herald.grpcAddress}` : herald.httpUrl;
  const session = http2.connect(base, { settings: { initialWindowSize: 256 } });
  session.on("error", () => {});
  const stalled = session.request({
    ":method": "POST",
    ":path": "/herald.v1.NotificationService/WatchStatus",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${KEY_A}`,
  });
  // A reset stream reports an 'error' on the client side; the test reads its rstCode instead.
  stalled.on("error", () => {});
  stalled.pause();
  stalled.end(frame("grpc", Buffer.alloc(0)));
  await new Promise((resolve) => stalled.once("response", resolve));

  // It holds the key's one slot (opened before this test's first Create: stream messages are tiny).
  expect(await tryOpen()).toBe(Code.ResourceExhausted);

  let created = 0;
  await waitFor(
    "the stalled stream's slot to be free",
    async () => {
      // Fewer at a time than the buffer holds: only a stream that is not being read falls behind.
      await Promise.all(Array.from({ length: BURST }, (_, i) => client.create({ notification: email(`slow-${created + i}`) })));
      created += BURST;
      return (await tryOpen()) === "heartbeat";
    },
    { timeoutMs: 120_000, everyMs: 50 },
  );

  // Reading now, the client gets what was written before the cut, then the end.
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stalled.once("trailers", resolve));
  const closed = stalled.closed ? Promise.resolve() : new Promise((resolve) => stalled.once("close", resolve));
  stalled.on("data", () => {});
  stalled.resume();
  await closed;
  session.close();
  console.log(`${listener}: slot freed after ${created} notifications created`);
  if (listener === "http") {
    expect(stalled.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    return;
  }
  const status = await trailers;
  expect(Number(status["grpc-status"])).toBe(Code.ResourceExhausted);
  expect(decodeURIComponent(String(status["grpc-message"]))).toMatch(new RegExp(`^stream fell more than ${BUFFER} events behind; resume with after="h2\\.`));
  expect(status[RESUME_CURSOR_HEADER]).toMatch(/^h2\.[A-Za-z0-9_-]{48}$/);
}, 180_000);
