import { clone } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  WatchStatusRequestSchema,
  type WatchStatusRequest,
  type WatchStatusResponse,
} from "../../gen/herald/v1/notification_service_pb.js";
import { isRetryable, reconnectDelayMs } from "./watch-retry.js";

// The core of `herald watch`: one WatchStatus call after another, each resuming after the last
// cursor seen, until the caller's signal aborts or the server refuses the request. Everything
// it touches is passed in (client factory, streams, sleep, signal), so tests drive it with a
// scripted fake instead of sockets.

/** The part of the typed client `herald watch` uses. */
export interface WatchClient {
  watchStatus(request: WatchStatusRequest, options: { signal: AbortSignal; headers?: HeadersInit }): AsyncIterable<WatchStatusResponse>;
  close(): void;
}

/** Where lines go: process.stdout, or a test's buffer. `write` returning false means "wait for drain". */
export interface LineSink {
  write(chunk: string): boolean;
  once(event: "drain", listener: () => void): unknown;
}

export interface WatchDeps {
  /**
   * A new client per connection attempt. A fresh channel connects at once, so the wait between
   * attempts is this loop's backoff alone, not grpc-js's own reconnect backoff (which grows to
   * two minutes) stacked on top of it.
   */
  connect(): WatchClient;
  /** One string per message to print, or undefined to print nothing (heartbeats). */
  format(msg: WatchStatusResponse): string | undefined;
  out: LineSink;
  err: { write(chunk: string): unknown };
  /** Resolves after `ms`; rejects (or resolves early) once `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<unknown>;
  /** Aborted on Ctrl-C / SIGTERM: the call in flight is canceled and the loop returns 0. */
  signal: AbortSignal;
  headers?: HeadersInit;
}

/**
 * The request that continues a watch after `cursor`. The snapshot was already sent before the
 * cursor (its messages carry cursors too), so asking for it again would print it twice.
 */
export function resumeAfter(request: WatchStatusRequest, cursor: string): WatchStatusRequest {
  const next = clone(WatchStatusRequestSchema, request);
  next.after = cursor;
  next.snapshot = false;
  next.snapshotSince = undefined;
  return next;
}

/** Prints the stream until stopped; returns the exit code (0 stopped by the signal, 1 refused by the server). */
export async function watchLoop(deps: WatchDeps, request: WatchStatusRequest): Promise<number> {
  const { signal } = deps;
  let cursor = request.after;
  let failures = 0;
  let interrupted = false;
  while (!signal.aborted) {
    // Until a message arrives the original request is repeated as is (snapshot included):
    // nothing of it has been printed yet.
    const attempt = cursor === request.after ? request : resumeAfter(request, cursor);
    let interruption: string;
    let connected = false;
    // A signal per attempt: the transport hangs a listener on the signal of every call and
    // never takes it off, so calls on the long-lived one would pile up listeners by reconnect.
    const call = new AbortController();
    const cancel = () => call.abort();
    signal.addEventListener("abort", cancel, { once: true });
    const client = deps.connect();
    try {
      for await (const msg of client.watchStatus(attempt, { signal: call.signal, headers: deps.headers })) {
        // Ctrl-C while messages were already buffered: what is printed stops here, and the
        // cursor printed on exit is that of the last line.
        if (signal.aborted) break;
        if (!connected) {
          // A live-only watch prints nothing until something happens; say on stderr that the
          // stream is up (the server's first message, often a heartbeat, proves it).
          connected = true;
          deps.err.write(interrupted ? `herald: resumed${cursor !== "" ? ` after ${cursor}` : ""}\n` : "herald: watching (Ctrl-C to stop)\n");
        }
        const text = deps.format(msg);
        if (text !== undefined) await write(deps.out, text, signal);
        // Heartbeats move the cursor too, so a resume skips what the server has already
        // filtered out instead of scanning it again.
        if (msg.cursor !== "") cursor = msg.cursor;
        failures = 0;
      }
      // A server never ends a watch on its own; a proxy or a restart in between may.
      interruption = "ended by the server";
    } catch (err) {
      if (signal.aborted) break;
      const e = ConnectError.from(err);
      if (!isRetryable(e)) {
        deps.err.write(`herald: ${e.message}\n`);
        return 1;
      }
      interruption = `${codeToString(e.code)}: ${e.rawMessage}`;
    } finally {
      signal.removeEventListener("abort", cancel);
      client.close();
    }
    if (signal.aborted) break;
    interrupted = true;
    const delay = reconnectDelayMs(++failures);
    const from = cursor !== "" ? `resuming after ${cursor}` : "reconnecting";
    deps.err.write(`herald: stream interrupted (${interruption}); ${from} in ${(delay / 1000).toFixed(1)}s\n`);
    await deps.sleep(delay, signal).catch(() => undefined);
  }
  deps.err.write(cursor !== "" ? `herald: stopped; resume with --after ${cursor}\n` : "herald: stopped\n");
  return 0;
}

/** Writes and, when the sink is full (a slow pipe), waits for it to drain, or for the signal. */
async function write(out: LineSink, text: string, signal: AbortSignal): Promise<void> {
  if (out.write(text) || signal.aborted) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    out.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
