import type http2 from "node:http2";

// Closes an HTTP/2 session that has had no open stream for a while. Node's own session timeout
// (Http2Session.setTimeout) counts socket inactivity instead, so it would cut a WatchStatus
// stream whose heartbeat interval is longer than the timeout, and keep a session whose client
// pings it but never calls. Here a session with an open stream is never idle, whatever its
// traffic, and one without streams is idle however chatty its pings.
//
// It also frees sessions Node would keep for ever: one whose client went away in the middle of a
// header block (HEADERS without END_HEADERS, then close) never gets a stream, so its timer runs
// out like any idle session's (issue 13, item 9).
//
// The close is graceful, GOAWAY(NO_ERROR), as grpc-js's max_connection_idle_ms does on the gRPC
// listener: a client that was about to call opens a new connection. A session that does not
// finish closing within `graceMs` (its peer does not read) is destroyed.

/** How long a session told GOAWAY may take to close before it is destroyed. */
export const IDLE_CLOSE_GRACE_MS = 5000;

export function closeWhenIdle(session: http2.ServerHttp2Session, idleMs: number, graceMs = IDLE_CLOSE_GRACE_MS): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;

  const arm = () => {
    timer = setTimeout(() => {
      if (session.closed || session.destroyed) return;
      session.close();
      const kill = setTimeout(() => session.destroyed || session.destroy(), graceMs);
      kill.unref();
      session.once("close", () => clearTimeout(kill));
    }, idleMs);
    timer.unref();
  };

  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      if (--open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}
