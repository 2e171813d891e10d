import { Code, type ConnectError } from "@connectrpc/connect";
import { backoffCeilingMs, type BackoffOptions } from "../loop/backoff.js";

// When `herald watch` reconnects by itself, and how long it waits first.

/** Reconnect delays: the first wait, doubling per failure up to the cap. */
export const reconnectBackoff: BackoffOptions = {
  baseMs: 500,
  // Someone is watching a terminal: a restarted server must show up within seconds.
  capMs: 5_000,
};

/**
 * The wait before reconnecting after `failures` interruptions in a row (1 for the first; the
 * count restarts once a message arrives): 0.5 s, 1 s, 2 s, 4 s, then 5 s. No jitter, unlike the
 * workers' retries: this is one person's client, not a fleet stampeding a restarted server, and
 * a predictable delay reads better in the note printed.
 */
export function reconnectDelayMs(failures: number): number {
  return backoffCeilingMs(failures, reconnectBackoff);
}

// grpc-js reports a connection that died under a call as INTERNAL or UNKNOWN in a few cases (an
// HTTP/2 stream reset without a gRPC status, a socket error it did not map), with these details.
// A server's own INTERNAL ("internal error", a bug) says none of this and is not retried.
const droppedConnection = /RST_STREAM|connection dropped|ECONNRESET|ETIMEDOUT|EPIPE|socket hang up|GOAWAY|ERR_HTTP2/i;

/**
 * Whether a failed stream is worth resuming. The server ends every stream it cannot keep with
 * UNAVAILABLE (shutdown) or RESOURCE_EXHAUSTED (the client fell behind); both, a deadline, and a
 * dropped connection are about the connection, not the request, so the same request resumed
 * after the last cursor can succeed. Anything else (a bad cursor, an unknown id, a key
 * refused, UNIMPLEMENTED) would fail the same way again.
 */
export function isRetryable(err: ConnectError): boolean {
  switch (err.code) {
    case Code.Unavailable:
    case Code.ResourceExhausted:
    case Code.DeadlineExceeded:
      return true;
    case Code.Internal:
    case Code.Unknown:
      return droppedConnection.test(err.rawMessage);
    default:
      return false;
  }
}
