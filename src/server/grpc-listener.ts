import type http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log.js";
import type { Admission } from "./admission.js";
import type { Edge } from "./edge.js";
import { createRpcObserver, type RpcObserverDeps } from "./rpc-observer.js";
import { handlerFor, type AnyImpl } from "./grpc-method.js";
import { DEFAULT_MAX_STREAMS_PER_CONNECTION, guardResets } from "./http2-limits.js";
import type { MountedService } from "./services.js";
import { limitConnections, type ConnectionGate } from "./connection-limits.js";
import { closeWhenIdle } from "./session-idle.js";

// Mounts connect-es style implementations on a @grpc/grpc-js server, using the
// generated descriptors for (de)serialization: no second code generator. Each
// method's handler (decoding, the edge, the answer) is grpc-method.ts.

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
  /** Metrics and access log of every finished call (rpc-observer.ts); none: neither. */
  observe?: Omit<RpcObserverDeps, "listener">;
}

export interface GrpcListener {
  server: grpc.Server;
  port: number;
  /** Stops accepting, lets in-flight calls finish for up to graceMs, then cancels the rest. Idempotent. */
  close(graceMs?: number): Promise<void>;
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
  const observer = createRpcObserver({ listener: "grpc", ...opts.observe });
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
      if (fn) handlers[method.name] = handlerFor(method, fn, { ...opts, observer });
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

