import type http from "node:http";
import http2 from "node:http2";
import { createContextKey, createContextValues, type ConnectError, type ContextValues } from "@connectrpc/connect";

// A server stream's way to end itself while its transport waits for a reader that has stopped
// reading. A handler is a generator: while the transport awaits 'drain' it is parked at a
// yield and cannot notice anything, so a WatchStatus subscriber that falls its buffer limit
// behind could hold its stream slot for as long as the client kept the connection. The
// transport offers a cut in the call's context values; the handler pulls it when it gives up
// on the reader, and the transport stops waiting, closes the handler (its finally blocks free
// the slot and the subscription) and ends the call with the error, queued behind what was
// already written.

const cutKey = createContextKey<AbortController | undefined>(undefined, { description: "herald.stream-cut" });

/** For a transport: offers a cut to the handler of this call; the signal aborts with the handler's error as reason. */
export function offerStreamCut(values: ContextValues): AbortSignal {
  const controller = new AbortController();
  values.set(cutKey, controller);
  return controller.signal;
}

/** For a handler: ends the call with `err` where the transport offers it; a no-op where not. */
export function cutStream(values: ContextValues, err: ConnectError): void {
  values.get(cutKey)?.abort(err);
}

/**
 * The cut for the HTTP listener (connect-node's `contextValues` hook): connect-node waits for
 * 'drain' like writeAll, and no status can pass the data queued ahead of it, so a stream parked
 * on a reader that does not read is reset, HTTP/2 with ENHANCE_YOUR_CALM (which gRPC and Connect
 * clients report as RESOURCE_EXHAUSTED), HTTP/1.1 by closing the connection. A stream that is
 * not parked needs nothing: its handler is pulled again and ends the call in-band itself.
 */
export function resetOnCut(req: http.IncomingMessage | http2.Http2ServerRequest): ContextValues {
  const values = createContextValues();
  offerStreamCut(values).addEventListener(
    "abort",
    () => {
      if ("stream" in req) {
        if (!req.stream.writableNeedDrain) return;
        // Node reports a stream closed with an error code as an 'error' event; this one is ours.
        req.stream.once("error", () => {});
        req.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      } else if (req.socket.writableNeedDrain) {
        req.socket.destroy();
      }
    },
    { once: true },
  );
  return values;
}
