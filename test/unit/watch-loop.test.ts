import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import {
  WatchStatusRequestSchema,
  WatchStatusResponseSchema,
  type WatchStatusRequest,
  type WatchStatusResponse,
} from "../../gen/herald/v1/notification_service_pb.js";
import { watchLoop, type LineSink, type WatchClient, type WatchDeps } from "../../src/cli/watch-loop.js";
import { formatJson, formatLine } from "../../src/cli/watch-output.js";

// The core of `herald watch` against a scripted fake client: what it prints, what it asks on
// each reconnect, how long it waits, and how it ends. No sockets, no real time.

const ID = "0193a0c4-0000-7000-8000-000000000001";
const T0 = Date.parse("2026-11-30T09:00:00.000Z");

const event = (cursor: string, sequence: number, status: Status, attempt = 0, detail = "", id = ID): WatchStatusResponse =>
  create(WatchStatusResponseSchema, {
    cursor,
    kind: {
      case: "event",
      value: { notificationId: id, sequence, status, attempt, detail, time: timestampFromDate(new Date(T0 + sequence * 1000)) },
    },
  });
const heartbeat = (cursor: string): WatchStatusResponse =>
  create(WatchStatusResponseSchema, { cursor, kind: { case: "heartbeat", value: { time: timestampFromDate(new Date(T0)) } } });
const snapshot = (cursor: string, status: Status, attempts: number, lastError = ""): WatchStatusResponse =>
  create(WatchStatusResponseSchema, {
    cursor,
    kind: { case: "snapshot", value: { id: ID, status, attempts, lastError, updateTime: timestampFromDate(new Date(T0)) } },
  });

/** What one connection does: gets the request and the call's signal, yields, then ends or throws. */
type Script = (signal: AbortSignal) => AsyncIterable<WatchStatusResponse>;

/** Ends like the grpc-js transport does when the caller aborts: CANCELED, once the signal fires. */
async function untilAborted(signal: AbortSignal): Promise<never> {
  if (!signal.aborted) await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
  throw new ConnectError("Cancelled on client", Code.Canceled);
}

/** A connection failing before its first message, as grpc-js does when nothing listens. */
const refused =
  (err: ConnectError): Script =>
  () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(err) }) });

/** A connection on which the user presses Ctrl-C before anything arrives. */
const CTRL_C = "ctrl-c";

function harness(scripts: Array<Script | typeof CTRL_C>, opts: { json?: boolean; sleep?: WatchDeps["sleep"] } = {}) {
  const requests: WatchStatusRequest[] = [];
  const sleeps: number[] = [];
  let out = "";
  let err = "";
  let opened = 0;
  let closed = 0;
  const stop = new AbortController();
  const sink: LineSink = { write: (s) => ((out += s), true), once: () => undefined };
  const connect = (): WatchClient => {
    opened++;
    return {
      watchStatus(request, { signal }) {
        requests.push(request);
        const script = scripts.shift();
        if (!script) throw new Error(`connection ${opened} was not scripted`);
        if (script !== CTRL_C) return script(signal);
        return {
          [Symbol.asyncIterator]: () => ({
            next: () => {
              stop.abort();
              return untilAborted(signal);
            },
          }),
        };
      },
      close: () => void closed++,
    };
  };
  const run = (request: WatchStatusRequest) =>
    watchLoop(
      {
        connect,
        format: opts.json ? formatJson : formatLine,
        out: sink,
        err: { write: (s: string) => (err += s) },
        sleep: async (ms, signal) => {
          sleeps.push(ms);
          return opts.sleep?.(ms, signal);
        },
        signal: stop.signal,
      },
      request,
    );
  return {
    run,
    /** Ctrl-C. */
    stop: () => stop.abort(),
    requests,
    sleeps,
    out: () => out,
    err: () => err,
    counts: () => ({ opened, closed }),
  };
}

const byId = (extra: { after?: string; snapshot?: boolean; statuses?: Status[] } = {}) =>
  create(WatchStatusRequestSchema, { selector: { case: "notificationId", value: ID }, ...extra });

describe("watchLoop", () => {
  it("prints events, resumes after the last cursor (a heartbeat's too) when the stream is UNAVAILABLE, and prints the cursor on Ctrl-C", async () => {
    const h = harness([
      async function* () {
        yield event("c1", 1, Status.QUEUED);
        yield event("c2", 2, Status.SENDING, 1);
        yield heartbeat("c3");
        throw new ConnectError("server shutting down", Code.Unavailable);
      },
      async function* (signal) {
        yield event("c4", 3, Status.SENT, 1, "sink:0193");
        h.stop();
        await untilAborted(signal);
      },
    ]);
    const request = byId({ statuses: [Status.QUEUED, Status.SENDING, Status.SENT] });

    expect(await h.run(request)).toBe(0);

    expect(h.out()).toBe(
      [
        `2026-11-30T09:00:01.000Z  ${ID}  QUEUED         attempt=0`,
        `2026-11-30T09:00:02.000Z  ${ID}  SENDING        attempt=1`,
        `2026-11-30T09:00:03.000Z  ${ID}  SENT           attempt=1  sink:0193`,
        "",
      ].join("\n"),
    );
    expect(h.err()).toBe(
      "herald: watching (Ctrl-C to stop)\n" +
        "herald: stream interrupted (unavailable: server shutting down); resuming after c3 in 0.5s\n" +
        "herald: resumed after c3\n" +
        "herald: stopped; resume with --after c4\n",
    );
    expect(h.sleeps).toEqual([500]);
    // The first call is the request as given; the second is the same selection, after the heartbeat.
    expect(h.requests[0]).toBe(request);
    expect(h.requests[1]).toMatchObject({ selector: { case: "notificationId", value: ID }, after: "c3", snapshot: false });
    expect(h.requests[1]!.statuses).toEqual([Status.QUEUED, Status.SENDING, Status.SENT]);
    expect(h.counts()).toEqual({ opened: 2, closed: 2 });
  });

  it("waits 0.5 s doubling to 5 s while nothing arrives, and starts over at 0.5 s after a message", async () => {
    const down = refused(new ConnectError("No connection established", Code.Unavailable));
    const h = harness([
      ...Array.from({ length: 6 }, () => down),
      async function* () {
        yield heartbeat("c1");
        throw new ConnectError("slow consumer", Code.ResourceExhausted);
      },
      down,
      CTRL_C,
    ]);

    expect(await h.run(create(WatchStatusRequestSchema))).toBe(0);

    expect(h.sleeps).toEqual([500, 1000, 2000, 4000, 5000, 5000, 500, 1000]);
    expect(h.err().split("\n").slice(5, 9)).toEqual([
      "herald: stream interrupted (unavailable: No connection established); reconnecting in 5.0s",
      "herald: resumed",
      "herald: stream interrupted (resource_exhausted: slow consumer); resuming after c1 in 0.5s",
      "herald: stream interrupted (unavailable: No connection established); resuming after c1 in 1.0s",
    ]);
    expect(h.out()).toBe("");
  });

  it("repeats the original request, snapshot included, until a first message carries a cursor", async () => {
    const since = timestampFromDate(new Date(T0));
    const request = create(WatchStatusRequestSchema, { selector: { case: "userId", value: "u-1" }, snapshot: true, snapshotSince: since });
    const h = harness([
      refused(new ConnectError("Connection dropped", Code.Unavailable)),
      async function* () {
        yield snapshot("s1", Status.RETRYING, 2, "smtp 451: try again later");
        throw new ConnectError("Received RST_STREAM with code 0 (Call ended without gRPC status)", Code.Internal);
      },
      CTRL_C,
    ]);

    expect(await h.run(request)).toBe(0);

    expect(h.requests[0]).toBe(request);
    expect(h.requests[1]).toBe(request);
    // After the snapshot's cursor: no second snapshot, no snapshot_since.
    expect(h.requests[2]).toMatchObject({ selector: { case: "userId", value: "u-1" }, after: "s1", snapshot: false, snapshotSince: undefined });
    expect(h.out()).toBe(`2026-11-30T09:00:00.000Z  ${ID}  snapshot RETRYING  attempt=2  smtp 451: try again later\n`);
    expect(h.err()).toContain("(internal: Received RST_STREAM with code 0 (Call ended without gRPC status)); resuming after s1 in 0.5s\n");
  });

  it("resumes when the server ends the stream without an error", async () => {
    const h = harness([
      async function* () {
        yield event("c1", 1, Status.QUEUED);
      },
      CTRL_C,
    ]);
    expect(await h.run(byId())).toBe(0);
    expect(h.err()).toBe(
      "herald: watching (Ctrl-C to stop)\n" +
        "herald: stream interrupted (ended by the server); resuming after c1 in 0.5s\n" +
        "herald: stopped; resume with --after c1\n",
    );
    expect(h.requests[1]?.after).toBe("c1");
  });

  it.each([
    [Code.InvalidArgument, "after: malformed cursor", "herald: [invalid_argument] after: malformed cursor\n"],
    [Code.NotFound, `notification ${ID} not found`, `herald: [not_found] notification ${ID} not found\n`],
    [Code.Unauthenticated, "unknown API key", "herald: [unauthenticated] unknown API key\n"],
    [Code.PermissionDenied, "not allowed", "herald: [permission_denied] not allowed\n"],
    [Code.Unimplemented, "method not implemented", "herald: [unimplemented] method not implemented\n"],
    [Code.Internal, "internal error", "herald: [internal] internal error\n"],
  ])("code %s: prints the error, does not reconnect, exits 1", async (code, message, printed) => {
    const h = harness([
      async function* () {
        yield event("c1", 1, Status.QUEUED);
        throw new ConnectError(message, code);
      },
    ]);
    expect(await h.run(byId())).toBe(1);
    expect(h.err()).toBe("herald: watching (Ctrl-C to stop)\n" + printed);
    expect(h.out().split("\n")).toHaveLength(2);
    expect(h.sleeps).toEqual([]);
    expect(h.counts()).toEqual({ opened: 1, closed: 1 });
  });

  it("Ctrl-C during the wait before a reconnect stops at once with exit 0", async () => {
    const h = harness(
      [
        async function* () {
          yield event("c7", 1, Status.QUEUED);
          throw new ConnectError("Connection dropped", Code.Unavailable);
        },
      ],
      {
        // The user presses Ctrl-C while the loop waits; a real sleep rejects on abort.
        sleep: (_ms, signal) => {
          h.stop();
          return Promise.reject(signal.reason as Error);
        },
      },
    );
    expect(await h.run(byId())).toBe(0);
    expect(h.err().split("\n").at(-2)).toBe("herald: stopped; resume with --after c7");
    expect(h.counts()).toEqual({ opened: 1, closed: 1 });
  });

  it("--after given and stopped before anything arrives: the same cursor to resume with", async () => {
    const h = harness([
      CTRL_C,
    ]);
    expect(await h.run(byId({ after: "c42" }))).toBe(0);
    expect(h.requests[0]?.after).toBe("c42");
    expect(h.err()).toBe("herald: stopped; resume with --after c42\n");
  });

  it("--json: one proto JSON object per line with its cursor; heartbeats left out", async () => {
    const h = harness(
      [
        async function* (signal) {
          yield snapshot("s1", Status.QUEUED, 0);
          yield heartbeat("h1");
          yield event("c2", 2, Status.SENDING, 1);
          h.stop();
          await untilAborted(signal);
        },
      ],
      { json: true },
    );
    expect(await h.run(byId({ snapshot: true }))).toBe(0);
    const lines = h.out().trimEnd().split("\n").map((l) => JSON.parse(l) as unknown);
    expect(lines).toEqual([
      { cursor: "s1", snapshot: { id: ID, status: "STATUS_QUEUED", updateTime: "2026-11-30T09:00:00Z" } },
      {
        cursor: "c2",
        event: { notificationId: ID, sequence: 2, status: "STATUS_SENDING", attempt: 1, time: "2026-11-30T09:00:02Z" },
      },
    ]);
    expect(h.err()).toBe("herald: watching (Ctrl-C to stop)\nherald: stopped; resume with --after c2\n");
  });

  it("waits for a full output pipe to drain before reading on", async () => {
    let drain: (() => void) | undefined;
    const written: string[] = [];
    const stop = new AbortController();
    let pulled = 0;
    const run = watchLoop(
      {
        connect: () => ({
          async *watchStatus(_req, { signal }) {
            for (let i = 1; i <= 3; i++) {
              pulled = i;
              yield event(`c${i}`, i, Status.QUEUED);
            }
            await untilAborted(signal);
          },
          close: () => undefined,
        }),
        format: formatLine,
        // Full after every line, as a pipe to a reader that stopped reading.
        out: { write: (s) => (written.push(s), false), once: (_e, fn) => (drain = fn) },
        err: { write: () => undefined },
        sleep: async () => undefined,
        signal: stop.signal,
      },
      byId(),
    );
    await new Promise((r) => setTimeout(r, 20));
    expect([written.length, pulled]).toEqual([1, 1]);
    drain!();
    await new Promise((r) => setTimeout(r, 20));
    expect([written.length, pulled]).toEqual([2, 2]);
    stop.abort();
    expect(await run).toBe(0);
  });
});
