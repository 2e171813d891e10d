import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { clientGoneKey } from "./call-info.js";

// The HandlerContext of one grpc-js call. connect's createHandlerContext builds three
// AbortControllers, three listeners, a deadline timer and three Headers per call, and ending
// the call with abort() makes a DOMException and dispatches an abort event: about a tenth of
// the server's CPU per Create, which never reads ctx.signal. Here the signal and the headers
// are built on first read (the signal already aborted if the call was cancelled, timed out or
// the server is shutting down by then); a call that never reads them allocates none of it.

/** What a call needs to know to abort its signal. */
export interface CallSource {
  /** grpc-js sets it when the client cancels or the stream breaks. */
  readonly cancelled: boolean;
  on(event: "cancelled", listener: () => void): unknown;
  off(event: "cancelled", listener: () => void): unknown;
}

export interface CallContextInit {
  method: DescMethod;
  call: CallSource;
  /** Builds the request headers; called on the first read of ctx.requestHeader. */
  requestHeader: () => Headers;
  values: ContextValues;
  /** Aborted on shutdown: reaches the call as ctx.signal. */
  shutdownSignal: AbortSignal;
  /** Time left for the call when it started, from its grpc-timeout; undefined = none. */
  timeoutMs?: number;
}

export interface CallContext {
  ctx: HandlerContext;
  /** Unlinks the signal (if it was ever read) from the shutdown signal, the call and the timer. Idempotent. */
  end(): void;
}

// Made once: reasons are only ever read, and a new error per call is the cost this file avoids.
const canceledReason = new ConnectError("client canceled", Code.Canceled);
const deadlineReason = new ConnectError("the operation timed out", Code.DeadlineExceeded);
const endedReason = new ConnectError("call ended", Code.Canceled);

export function createCallContext(init: CallContextInit): CallContext {
  const { method, call, shutdownSignal } = init;
  const deadline = init.timeoutMs !== undefined && init.timeoutMs > 0 ? Date.now() + init.timeoutMs : undefined;
  let controller: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;

  const onCancel = () => abort(canceledReason);
  const onShutdown = () => abort(shutdownSignal.reason);

  function unlink(): void {
    call.off("cancelled", onCancel);
    shutdownSignal.removeEventListener("abort", onShutdown);
    clearTimeout(timer);
  }

  function abort(reason: unknown): void {
    unlink();
    if (!controller!.signal.aborted) controller!.abort(reason);
  }

  function link(): AbortController {
    const c = new AbortController();
    controller = c;
    const left = deadline === undefined ? undefined : deadline - Date.now();
    if (ended) c.abort(endedReason);
    else if (call.cancelled) c.abort(canceledReason);
    else if (shutdownSignal.aborted) c.abort(shutdownSignal.reason);
    else if (left !== undefined && left <= 0) c.abort(deadlineReason);
    else {
      call.on("cancelled", onCancel);
      shutdownSignal.addEventListener("abort", onShutdown);
      if (left !== undefined) timer = setTimeout(() => abort(deadlineReason), left);
    }
    return c;
  }

  // What most unary handlers need of cancellation (accept.ts): a read of grpc-js's flag.
  init.values.set(clientGoneKey, () => call.cancelled);

  const ctx: HandlerContext = {
    method,
    service: method.parent,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${method.parent.typeName}/${method.name}`,
    values: init.values,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    get signal() {
      return (controller ?? link()).signal;
    },
    // The edge reads two headers without them (a Headers of every metadata entry costs more
    // than the rest of the call's setup); handlers that want them get them.
    get requestHeader() {
      return (requestHeader ??= init.requestHeader());
    },
    // The grpc-js adapter sends neither; they exist because handlers may set them.
    get responseHeader() {
      return (responseHeader ??= new Headers());
    },
    get responseTrailer() {
      return (responseTrailer ??= new Headers());
    },
  };

  return {
    ctx,
    end() {
      if (ended) return;
      ended = true;
      // Work still listening on the signal (a stream's wait) learns the call is over.
      if (controller) abort(endedReason);
    },
  };
}
