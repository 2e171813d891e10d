import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { WatchStatusResponseSchema, type WatchStatusResponse } from "../../gen/herald/v1/notification_service_pb.js";
import { backoffMs, codeName, startFeed, type FeedState, type WatchRequest } from "../../web/src/feed.js";

// The dashboard's feed loop against scripted streams: which request each
// connection makes, what it delivers, and how it waits between them.

const event = (id: string, sequence: number, cursor: string) =>
  create(WatchStatusResponseSchema, { cursor, kind: { case: "event", value: { notificationId: id, sequence } } });
const heartbeat = (cursor: string) => create(WatchStatusResponseSchema, { cursor, kind: { case: "heartbeat", value: {} } });

/** One scripted connection: its messages, then how it ends (an error, or undefined for a clean end). */
type Script = { messages: WatchStatusResponse[]; end?: ConnectError };

function harness(scripts: Script[]) {
  const requests: WatchRequest[] = [];
  const received: string[] = [];
  const states: FeedState[] = [];
  const delays: number[] = [];
  let finish: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const feed = startFeed({
    watch(req, { signal, onHeader }) {
      requests.push(req);
      const script = scripts.shift();
      return (async function* () {
        // Out of scripts: stay open and idle until stop(), as a live stream would.
        if (!script) {
          finish();
          await new Promise((r) => signal.addEventListener("abort", r));
          return;
        }
        onHeader();
        yield* script.messages;
        if (script.end) throw script.end;
      })();
    },
    onMessage: (m) => received.push(m.cursor),
    onState: (s) => {
      states.push(s);
      if (s.kind === "stopped") finish();
    },
    sleep: async (ms) => void delays.push(ms),
  });
  return { feed, requests, received, states, delays, finished };
}

describe("dashboard feed", () => {
  it("backs off 0.5 s, 1 s, 2 s, 4 s, then stays at 5 s", () => {
    expect([1, 2, 3, 4, 5, 6, 20].map(backoffMs)).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it("names codes the way gRPC does", () => {
    expect(codeName(Code.Unavailable)).toBe("UNAVAILABLE");
    expect(codeName(Code.ResourceExhausted)).toBe("RESOURCE_EXHAUSTED");
    expect(codeName(Code.InvalidArgument)).toBe("INVALID_ARGUMENT");
  });

  it("starts with a snapshot, then resumes after the last cursor of any kind of message", async () => {
    const h = harness([
      { messages: [event("a", 1, "c1"), heartbeat("c2")], end: new ConnectError("shutting down", Code.Unavailable) },
      { messages: [event("a", 2, "c3")], end: new ConnectError("too slow", Code.ResourceExhausted) },
      // A clean end (a proxy closing the response) is resumed like an error.
      { messages: [event("a", 3, "c4")] },
    ]);
    await h.finished;
    h.feed.stop();
    expect(h.requests).toEqual([{ snapshot: true }, { after: "c2" }, { after: "c3" }, { after: "c4" }]);
    expect(h.received).toEqual(["c1", "c2", "c3", "c4"]);
    expect(h.feed.cursor()).toBe("c4");
    // Each stream delivered something, so the backoff started over every time.
    expect(h.delays).toEqual([500, 500, 500]);
    const reconnecting = h.states.filter((s) => s.kind === "reconnecting");
    expect(reconnecting.map((s) => s.kind === "reconnecting" && [s.code, s.message])).toEqual([
      ["UNAVAILABLE", "shutting down"],
      ["RESOURCE_EXHAUSTED", "too slow"],
      ["UNAVAILABLE", "the server ended the stream"],
    ]);
  });

  it("backs off further while connections fail before delivering anything, and keeps the cursor", async () => {
    const down = () => ({ messages: [], end: new ConnectError("connection refused", Code.Unavailable) });
    const h = harness([{ messages: [event("a", 1, "c1")], end: new ConnectError("", Code.Unavailable) }, down(), down(), down(), down(), down()]);
    await h.finished;
    h.feed.stop();
    expect(h.delays).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(h.requests.slice(1).every((r) => r.after === "c1" && !r.snapshot)).toBe(true);
  });

  it("stops on errors a retry cannot fix, showing the code", async () => {
    const h = harness([{ messages: [], end: new ConnectError("unknown API key", Code.Unauthenticated) }]);
    await h.finished;
    expect(h.requests).toHaveLength(1);
    expect(h.states.at(-1)).toEqual({ kind: "stopped", code: "UNAUTHENTICATED", message: "unknown API key" });
  });
});
