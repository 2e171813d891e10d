import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import { createCallContext, type CallContext } from "./grpc-call-context.js";
import type { Admission } from "./admission.js";
import { malformedRequest, overloaded, REQUEST_ID_HEADER, requestIdOf, type Edge } from "./edge.js";
import { callKey, requestIdKey } from "./call-info.js";
import { OK, type RpcObserver } from "./rpc-observer.js";
import { offerStreamCut } from "./stream-cut.js";

// One method of a connect-es style implementation as a grpc-js handler (the gRPC listener,
// grpc-listener.ts, mounts one per method): the request is decoded here, after the edge, so a
// malformed message is INVALID_ARGUMENT rather than INTERNAL; the answer carries the call's
// x-request-id in its initial metadata; every call is reported to the listener's observer once,
// with the code its client saw.

export interface GrpcMethodDeps {
  edge: Edge;
  /** Aborted on shutdown; reaches every handler as part of ctx.signal. */
  shutdownSignal: AbortSignal;
  /** Refuses calls of `methods` ("Service/Method") at the door under overload (admission.ts). */
  admission?: { gate: Admission; methods: ReadonlySet<string> };
  observer: RpcObserver;
}

export type AnyImpl = (req: unknown, ctx: HandlerContext) => unknown;
type StreamCall = grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

function headersFrom(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value === "string") headers.append(key, value);
  }
  return headers;
}

/** Header lookups straight from the metadata, as Headers.get answers them (first value, text only). */
function metadataHeader(metadata: grpc.Metadata): Pick<Headers, "get"> {
  return {
    get(name) {
      const value = metadata.get(name.toLowerCase())[0];
      return typeof value === "string" ? value : null;
    },
  };
}

function toStatus(err: ConnectError): grpc.StatusObject {
  // Connect's Code values are the gRPC status codes; the error's metadata goes out as trailers
  // (e.g. herald-resume-cursor on an interrupted WatchStatus stream).
  const metadata = new grpc.Metadata();
  err.metadata.forEach((value, key) => metadata.set(key, value));
  return { code: err.code as number, details: err.rawMessage, metadata };
}

/** ms left of a grpc-js call's deadline; undefined without one. */
function timeLeftMs(call: grpc.ServerUnaryCall<Buffer, Buffer> | StreamCall): number | undefined {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? deadline - Date.now() : undefined;
}

/** The call's request id (the caller's x-request-id if valid), sent back in its initial metadata by `answerRequestId`. */
function requestIdFrom(metadata: grpc.Metadata): string {
  const sent = metadata.get(REQUEST_ID_HEADER)[0];
  return requestIdOf(typeof sent === "string" ? sent : undefined);
}

function answerRequestId(call: grpc.ServerUnaryCall<Buffer, Buffer> | StreamCall, requestId: string): void {
  const metadata = new grpc.Metadata();
  metadata.set(REQUEST_ID_HEADER, requestId);
  call.sendMetadata(metadata);
}

/**
 * The code the client saw, read as the call ends: past its deadline grpc-js has answered
 * DEADLINE_EXCEEDED by itself (a later answer is dropped), and a client that left saw none of ours.
 */
function seenCode(call: grpc.ServerUnaryCall<Buffer, Buffer> | StreamCall, code: number): number {
  const left = timeLeftMs(call);
  if (left !== undefined && left <= 0) return Code.DeadlineExceeded;
  return call.cancelled ? Code.Canceled : code;
}

/** The grpc-js handler of `method`, implemented by `fn`. */
export function handlerFor(method: DescMethod, fn: AnyImpl, opts: GrpcMethodDeps): grpc.UntypedHandleCall {
  const { edge, observer } = opts;
  const gate = opts.admission?.methods.has(`${method.parent.typeName}/${method.name}`) ? opts.admission.gate : undefined;
  const observed = observer.of(method);

  // Builds the HandlerContext for a grpc-js call and runs the edge.
  function prepare(call: grpc.ServerUnaryCall<Buffer, Buffer> | StreamCall, timeoutMs: number | undefined, requestId: string): CallContext {
    const values = createContextValues();
    values.set(requestIdKey, requestId);
    const context = createCallContext({
      method,
      call,
      requestHeader: () => headersFrom(call.metadata),
      values,
      shutdownSignal: opts.shutdownSignal,
      timeoutMs,
    });
    edge.admit(method, metadataHeader(call.metadata), values);
    return context;
  }

  function decode(bytes: Buffer): unknown {
    try {
      return fromBinary(method.input, bytes);
    } catch {
      throw malformedRequest(method);
    }
  }

  function encode(init: unknown): Buffer {
    return Buffer.from(toBinary(method.output, create(method.output, init as never)));
  }

  function fail(err: unknown, values: HandlerContext["values"] | undefined): grpc.StatusObject {
    return toStatus(edge.classify(err, method, values ?? createContextValues()));
  }

  /** A call that answers with a stream; `input` is the request (or, for bidi, the requests). */
  function stream(call: StreamCall, input: () => unknown): void {
    const started = performance.now();
    const requestId = requestIdFrom(call.metadata);
    // At once: a stream's client learns its id before the first message, which may be long coming.
    answerRequestId(call, requestId);
    let context: CallContext | undefined;
    void (async () => {
      let code = OK;
      try {
        context = prepare(call, timeLeftMs(call), requestId);
        const cut = offerStreamCut(context.ctx.values);
        const out = fn(input(), context.ctx) as AsyncIterable<unknown>;
        await writeAll(call, out, encode, cut);
        call.end();
      } catch (err) {
        if (!call.cancelled) {
          const status = fail(err, context?.ctx.values);
          code = status.code;
          call.emit("error", status);
        }
      } finally {
        observed.finished(seenCode(call, code), started, requestId, context?.ctx.values.get(callKey)?.tenant);
        context?.end();
      }
    })();
  }

  switch (method.methodKind) {
    case "unary":
      return ((call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const started = performance.now();
        const requestId = requestIdFrom(call.metadata);
        const left = timeLeftMs(call);
        // Before anything else: a call refused for overload must cost next to nothing.
        const retryAfterMs = gate?.refuse(left);
        if (retryAfterMs !== undefined) {
          answerRequestId(call, requestId);
          cb(toStatus(overloaded(retryAfterMs)));
          return observed.finished(seenCode(call, Code.ResourceExhausted), started, requestId, undefined);
        }
        let context: CallContext | undefined;
        // The id goes out with the answer (sent earlier, the headers would cost a socket write of their own).
        const answer = (err: grpc.StatusObject | null, out?: Buffer): void => {
          answerRequestId(call, requestId);
          cb(err, out);
          observed.finished(seenCode(call, err ? err.code : OK), started, requestId, context?.ctx.values.get(callKey)?.tenant);
        };
        Promise.resolve()
          .then(async () => {
            context = prepare(call, left, requestId);
            return encode(await fn(decode(call.request), context.ctx));
          })
          .then(
            (out) => answer(null, out),
            (err: unknown) => answer(fail(err, context?.ctx.values)),
          )
          .finally(() => context?.end());
      }) as grpc.UntypedHandleCall;
    case "server_streaming":
      return ((call: grpc.ServerWritableStream<Buffer, Buffer>) => stream(call, () => decode(call.request))) as grpc.UntypedHandleCall;
    case "bidi_streaming":
      return ((call: grpc.ServerDuplexStream<Buffer, Buffer>) =>
        stream(call, async function* requests(): AsyncIterable<unknown> {
          // destroyOnReturn: false — leaving the loop at the client's half-close
          // must not destroy the call, or the status trailer is never sent.
          for await (const chunk of call.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) yield decode(chunk);
        })) as grpc.UntypedHandleCall;
    default:
      throw new Error(`${method.methodKind} methods are not supported by the grpc-js adapter`);
  }
}

/**
 * Writes every message, waiting for 'drain' so a slow reader applies back-pressure. A handler
 * that gives up on the reader meanwhile pulls `cut` (stream-cut.ts): its error is thrown from
 * here, and leaving the loop closes the handler's generator, so its finally blocks run now.
 */
async function writeAll(call: StreamCall, out: AsyncIterable<unknown>, encode: (m: unknown) => Buffer, cut: AbortSignal): Promise<void> {
  for await (const message of out) {
    if (call.cancelled) return;
    if (!call.write(encode(message)) && !cut.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          call.off("drain", done);
          call.off("cancelled", done);
          cut.removeEventListener("abort", done);
          resolve();
        };
        call.on("drain", done);
        call.on("cancelled", done);
        cut.addEventListener("abort", done);
      });
    }
    if (cut.aborted) throw cut.reason;
  }
}
