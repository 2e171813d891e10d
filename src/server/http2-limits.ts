import type { Logger } from "../log.js";
import { systemClock, type Clock } from "../clock.js";

// What one client connection may do to Node's HTTP/2 server, shared by both listeners.
//
// Node answers the HTTP/2 rapid-reset attack (CVE-2023-44487) in nghttp2: a token bucket per
// session, 1,000 RST_STREAMs at once and 33 a second after (Node 20 cannot change it: the
// streamResetBurst/streamResetRate options are ignored there, measured). Past it nghttp2 sends
// GOAWAY(INTERNAL_ERROR); a Node client (grpc-js, connect-node) then destroys the session and
// every call still on it, however unrelated, fails INTERNAL. A client cancelling calls in bulk
// (its deadlines passing in an overload, a WatchStatus fan-out torn down) is not an attack, but
// nghttp2 cannot tell.
//
// So each session keeps a mirror of that bucket, and shortly before nghttp2's would run out the
// server closes the connection itself, gracefully: GOAWAY(NO_ERROR) naming the last stream it
// took. nghttp2 makes no GOAWAY of its own once one was submitted, the client opens its next
// calls on a new connection (grpc-js and connect-node do so by themselves), and the calls still
// on the old one finish normally. The protection stays: the connection takes no new stream, and
// streams held open past `graceMs` are cut.

/** nghttp2's rapid-reset bucket as Node 20 builds it (not configurable there). */
export const RESET_BURST = 1000;
export const RESET_REFILL_PER_SECOND = 33;
/** Tokens left in the mirror when the server closes the connection: nghttp2 must not get there first. */
export const RESET_HEADROOM = 100;
/** How long a connection closed for its resets may keep its open streams. */
export const DEFAULT_RESET_GRACE_MS = 30_000;

/**
 * SETTINGS_MAX_CONCURRENT_STREAMS: a bound on what one connection can hold in memory, set well
 * above what admission lets pile up. A low cap would hide calls from admission control: the
 * client queues them itself, they time out there, and each timeout costs a reset.
 */
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 10_000;

/** RST_STREAM error code CANCEL: what a client sends to abandon a call. */
const CANCEL = 8;
/** GOAWAY error code NO_ERROR: a graceful close. */
const NO_ERROR = 0;

/** The parts of a Node ServerHttp2Session the guard uses (a fake in unit tests). */
export interface GuardedSession {
  on(event: "stream", listener: (stream: GuardedStream) => void): unknown;
  once(event: "close", listener: () => void): unknown;
  goaway(code: number, lastStreamID: number): void;
  close(): void;
  destroy(): void;
  readonly closed: boolean;
  readonly destroyed: boolean;
  readonly socket?: { remoteAddress?: string; remotePort?: number } | null;
}

export interface GuardedStream {
  readonly id?: number;
  readonly rstCode?: number;
  once(event: "close", listener: () => void): unknown;
}

export interface ResetGuardOptions {
  log: Logger;
  /** "grpc" or "http", for the log line. */
  listener: string;
  clock?: Clock;
  /** @defaultValue DEFAULT_RESET_GRACE_MS */
  graceMs?: number;
}

/**
 * Watches one session's client resets; closes it gracefully (and logs at warn, once) before
 * nghttp2's rapid-reset limit would close it with an error.
 */
export function guardResets(session: GuardedSession, opts: ResetGuardOptions): void {
  const clock = opts.clock ?? systemClock;
  let tokens = RESET_BURST;
  let at = clock.now();
  let resets = 0;
  let lastStreamId = 0;
  let open = 0;
  let closing = false;

  function onReset(): void {
    const now = clock.now();
    tokens = Math.min(RESET_BURST, tokens + ((now - at) / 1000) * RESET_REFILL_PER_SECOND) - 1;
    at = now;
    resets++;
    if (tokens >= RESET_HEADROOM || closing) return;
    closing = true;
    const peer = `${session.socket?.remoteAddress}:${session.socket?.remotePort}`;
    opts.log.warn(
      { listener: opts.listener, peer, resets, openStreams: open, lastStreamId, burst: RESET_BURST, perSecond: RESET_REFILL_PER_SECOND },
      "HTTP/2 client reset streams close to the rapid-reset limit: closing its connection gracefully (GOAWAY NO_ERROR); its open calls finish, new ones go to a new connection",
    );
    if (session.closed || session.destroyed) return;
    session.goaway(NO_ERROR, lastStreamId);
    session.close();
    const timer = setTimeout(() => session.destroyed || session.destroy(), opts.graceMs ?? DEFAULT_RESET_GRACE_MS);
    timer.unref();
    session.once("close", () => clearTimeout(timer));
  }

  session.on("stream", (stream) => {
    lastStreamId = Math.max(lastStreamId, stream.id ?? 0);
    open++;
    stream.once("close", () => {
      open--;
      if (stream.rstCode === CANCEL) onReset();
    });
  });
}
