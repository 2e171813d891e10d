import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchStatusRequestSchema, WatchStatusResponse } from "../../gen/herald/v1/notification_service_pb.js";

// The live feed: one WatchStatus stream at a time, resumed after the cursor of
// the last message received whenever it breaks. The server guarantees that
// `after: cursor` continues with the next event, without gap or repeat, on any
// instance, so the page keeps no dedupe logic of its own: a repeat would show.

export type WatchRequest = MessageInitShape<typeof WatchStatusRequestSchema>;

/** Opens one stream; `onHeader` fires when the server has accepted the call. */
export type Watch = (req: WatchRequest, opts: { signal: AbortSignal; onHeader: () => void }) => AsyncIterable<WatchStatusResponse>;

export type FeedState =
  | { kind: "connecting"; resuming: boolean }
  | { kind: "live" }
  | { kind: "reconnecting"; code: string; message: string; delayMs: number }
  | { kind: "stopped"; code: string; message: string };

export interface FeedOptions {
  watch: Watch;
  onMessage(msg: WatchStatusResponse): void;
  onState(state: FeedState): void;
  /** Resolves after ms, or early when signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface Feed {
  /** The cursor of the last message received ("" before the first). */
  cursor(): string;
  stop(): void;
}

/** 0.5 s, 1 s, 2 s, 4 s, then 5 s: quick after a blip, gentle on a server that is down. */
export function backoffMs(failures: number): number {
  return Math.min(5000, 500 * 2 ** Math.max(0, failures - 1));
}

// Errors no retry can fix: a wrong key, a server without WatchStatus, a request
// it refuses. Retrying them would only hide the problem behind "reconnecting".
const fatal = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.Unimplemented]);

/** "InvalidArgument" → "INVALID_ARGUMENT", the spelling gRPC and Herald's docs use. */
export function codeName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function startFeed(opts: FeedOptions): Feed {
  const abort = new AbortController();
  let cursor = "";
  void run();

  async function run() {
    let failures = 0;
    while (!abort.signal.aborted) {
      // The first connection asks for a snapshot; a resume must not, or every
      // notification would be sent again as a snapshot row.
      const resuming = cursor !== "";
      const req: WatchRequest = resuming ? { after: cursor } : { snapshot: true };
      opts.onState({ kind: "connecting", resuming });
      let err: ConnectError;
      try {
        let received = false;
        const stream = opts.watch(req, { signal: abort.signal, onHeader: () => opts.onState({ kind: "live" }) });
        for await (const msg of stream) {
          // Only a stream that delivered something resets the backoff: a server
          // that accepts and then fails at once must not be hammered.
          if (!received) failures = 0;
          received = true;
          if (msg.cursor) cursor = msg.cursor;
          opts.onMessage(msg);
        }
        err = new ConnectError("the server ended the stream", Code.Unavailable);
      } catch (e) {
        if (abort.signal.aborted) return;
        err = ConnectError.from(e);
      }
      if (abort.signal.aborted) return;
      if (fatal.has(err.code)) {
        opts.onState({ kind: "stopped", code: codeName(err.code), message: err.rawMessage });
        return;
      }
      failures++;
      const delayMs = backoffMs(failures);
      opts.onState({ kind: "reconnecting", code: codeName(err.code), message: err.rawMessage, delayMs });
      await opts.sleep(delayMs, abort.signal);
    }
  }

  return {
    cursor: () => cursor,
    stop: () => abort.abort(),
  };
}

/** setTimeout as a promise that also settles when `signal` aborts (so stop() is immediate). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
