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

it("a stream whose client never reads ends RESOURCE_EXHAUSTED once it is the buffer behind, and frees its slot", async () => {
  // A 256-byte window, never widened while the stream is paused: the server's writes back up.
  const session = http2.connect(`http://${herald.grpcAddress}`, { settings: { initialWindowSize: 256 } });
  session.on("error", () => {});
  const stalled = session.request({
    ":method": "POST",
    ":path": "/herald.v1.NotificationService/WatchStatus",
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${KEY_A}`,
  });
  stalled.pause();
  stalled.end(frame("grpc", Buffer.alloc(0)));
  await new Promise((resolve) => stalled.once("response", resolve));

  // It holds the key's one slot.
  expect(await tryOpen()).toBe(Code.ResourceExhausted);

  let created = 0;
  await waitFor(
    "the stalled stream's slot to be free",
    async () => {
      await Promise.all(Array.from({ length: 25 }, (_, i) => client.create({ notification: email(`slow-${created + i}`) })));
      created += 25;
      return (await tryOpen()) === "heartbeat";
    },
    { timeoutMs: 90_000, everyMs: 100 },
  );

  // Reading now, the client gets what was written before the cut, then the status.
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stalled.once("trailers", resolve));
  stalled.on("data", () => {});
  stalled.resume();
  const status = await trailers;
  session.close();
  expect(Number(status["grpc-status"])).toBe(Code.ResourceExhausted);
  expect(decodeURIComponent(String(status["grpc-message"]))).toMatch(new RegExp(`^stream fell more than ${BUFFER} events behind; resume with after="h1\\.`));
  expect(status[RESUME_CURSOR_HEADER]).toMatch(/^h1\./);
  console.log(`slot freed after ${created} notifications created`);
}, 120_000);
