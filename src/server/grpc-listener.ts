import type http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod } from "@bufbuild/protobuf";
import { ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "../log.js";
import { createCallContext, type CallContext } from "./grpc-call-context.js";
import type { Admission } from "./admission.js";
import { malformedRequest, overloaded, type Edge } from "./edge.js";
import { DEFAULT_MAX_STREAMS_PER_CONNECTION, guardResets } from "./http2-limits.js";
import type { MountedService } from "./services.js";
import { offerStreamCut } from "./stream-cut.js";
import { limitConnections, type ConnectionGate } from "./connection-limits.js";
import { closeWhenIdle } from "./session-idle.js";

// Mounts connect-es style implementations on a @grpc/grpc-js server, using the
// generated descriptors for (de)serialization: no second code generator. The
// request is decoded inside the handler (not by grpc-js) so a malformed
// message is answered INVALID_ARGUMENT rather than INTERNAL.

export interface GrpcListenerOptions {
  host: string;
  port: number;
  services: MountedService[];
  edge: Edge;
  log: Logger;
  /** Larger requests are refused with RESOURCE_EXHAUSTED before they are buffered. */
  maxMessageBytes: number;
  /** Aborted on shutdown; reaches every handler as part of ctx.signal. */
  shutdownSignal: AbortSignal;
  /** SETTINGS_MAX_CONCURRENT_STREAMS (see http2-limits.ts). @defaultValue DEFAULT_MAX_STREAMS_PER_CONNECTION */
  maxStreamsPerConnection?: number;
  /** Refuses calls of `methods` ("Service/Method") at the door under overload (admission.ts). */
  admission?: { gate: Admission; methods: ReadonlySet<string> };
  /** A connection with no call for this long is closed with GOAWAY (session-idle.ts). */
  idleTimeoutMs: number;
  /** The connection caps, shared with the HTTP listener (connection-limits.ts). */
  connections: ConnectionGate;
}

export interface GrpcListener {
  server: grpc.Server;
  port: number;
  /** Stops accepting, lets in-flight calls finish for up to graceMs, then cancels the rest. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

type AnyImpl = (req: unknown, ctx: HandlerContext) => unknown;
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

export async function startGrpcListener(opts: GrpcListenerOptions): Promise<GrpcListener> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": opts.maxMessageBytes,
    // Detect dead peers on long-lived WatchStatus streams.
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_concurrent_streams": opts.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
  });
  for (const { service, impl } of opts.services) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const fn = (impl as Record<string, AnyImpl | undefined>)[method.localName];
      definition[method.name] = {
        path: `/${service.typeName}/${method.name}`,
        requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
        responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      };
      // Without a handler grpc-js answers UNIMPLEMENTED by itself.
      if (fn) handlers[method.name] = handlerFor(method, fn, opts);
    }
    server.addService(definition, handlers);
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  for (const h2 of http2ServersOf(server, opts.log)) {
    h2.on("session", (session: http2.ServerHttp2Session) => {
      guardResets(session, { log: opts.log, listener: "grpc" });
      // Not grpc.max_connection_idle_ms: grpc-js only asks such a session to close, and one left
      // in the middle of a header block never does (issue 13, item 9).
      closeWhenIdle(session, opts.idleTimeoutMs);
    });
    limitConnections(h2, opts.connections, "grpc");
  }
  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    close(graceMs = 10_000) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}

/**
 * The HTTP/2 servers under a grpc-js server, for the reset guard (http2-limits.ts). grpc-js has
 * no public hook for its sessions; it keeps its servers in a private map (@grpc/grpc-js 1.14),
 * checked here so an upgrade that moves it is logged at start (and fails
 * test/faults/cancel-storm.test.ts) instead of silently losing the guard.
 */
function http2ServersOf(server: grpc.Server, log: Logger): http2.Http2Server[] {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (servers instanceof Map) return [...(servers as Map<http2.Http2Server, unknown>).keys()];
  log.error("@grpc/grpc-js keeps no http2Servers map any more: the gRPC listener runs without its HTTP/2 reset guard");
  return [];
}

/** ms left of a grpc-js call's deadline; undefined without one. */
function timeLeftMs(call: grpc.ServerUnaryCall<Buffer, Buffer> | StreamCall): number | undefined {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? deadline - Date.now() : undefined;
}

function handlerFor(method: DescMethod, fn: AnyImpl, opts: GrpcListenerOptions): grpc.UntypedHandleCall {
  const { edge } = opts;
  const gate = opts.admission?.methods.has(`${method.parent.typeName}/${method.name}`) ? opts.admission.gate : undefined;

  // Builds the HandlerContext for a grpc-js call and runs the edge.
  function prepare(call: grpc.ServerUnaryCall<Buffer, Buffer> | StreamCall, timeoutMs: number | undefined): CallContext {
    const values = createContextValues();
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
    let context: CallContext | undefined;
    void (async () => {
      try {
        context = prepare(call, timeLeftMs(call));
        const cut = offerStreamCut(context.ctx.values);
        const out = fn(input(), context.ctx) as AsyncIterable<unknown>;
        await writeAll(call, out, encode, cut);
        call.end();
      } catch (err) {
        if (!call.cancelled) call.emit("error", fail(err, context?.ctx.values));
      } finally {
        context?.end();
      }
    })();
  }

  switch (method.methodKind) {
    case "unary":
      return ((call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const left = timeLeftMs(call);
        // Before anything else: a call refused for overload must cost next to nothing.
        const retryAfterMs = gate?.refuse(left);
        if (retryAfterMs !== undefined) return cb(toStatus(overloaded(retryAfterMs)));
        let context: CallContext | undefined;
        Promise.resolve()
          .then(async () => {
            context = prepare(call, left);
            return encode(await fn(decode(call.request), context.ctx));
          })
          .then(
            (out) => cb(null, out),
            (err: unknown) => cb(fail(err, context?.ctx.values)),
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
