import http2 from "node:http2";
import http from "node:http";
import net, { type Socket } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { cors as connectCors, type ConnectRouter } from "@connectrpc/connect";
import corsMiddleware from "cors";
import type { HttpRoute, NodeRequest, NodeResponse } from "../health/route.js";
import type { Logger } from "../log.js";
import type { Edge } from "./edge.js";
import { edgeInterceptor } from "./edge-interceptor.js";
import { gateRequests } from "./request-gate.js";
import { resetOnCut } from "./stream-cut.js";
import { REQUEST_ID_HEADER, requestIdOf } from "./edge.js";
import { requestIdKey } from "./call-info.js";
import { createRpcObserver, type RpcObserverDeps } from "./rpc-observer.js";
import type { Admission } from "./admission.js";
import { DEFAULT_MAX_STREAMS_PER_CONNECTION, guardResets } from "./http2-limits.js";
import type { MountedService } from "./services.js";
import type { ConnectionsConfig } from "../config.js";
import type { ConnectionGate } from "./connection-limits.js";
import { closeWhenIdle } from "./session-idle.js";

// The HTTP listener serves Connect, gRPC-Web and gRPC over HTTP/1.1 and h2c on
// one port: browsers' fetch speaks HTTP/1.1, tools speak h2c. Node's cleartext
// http2.createServer refuses HTTP/1.1 (allowHTTP1 works only with TLS), so a
// plain TCP listener looks at the first bytes of each connection and hands it
// to an HTTP/2 or an HTTP/1.1 server; both share one request handler.

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** Enough bytes to tell "PRI " from any HTTP/1.x method. */
const SNIFF_BYTES = 4;

export interface HttpListenerOptions {
  host: string;
  port: number;
  services: MountedService[];
  edge: Edge;
  log: Logger;
  maxMessageBytes: number;
  /** Origins allowed by CORS; "*" allows any. */
  corsOrigins: string[];
  shutdownSignal: AbortSignal;
  routes: HttpRoute[];
  /** SETTINGS_MAX_CONCURRENT_STREAMS for h2c (see http2-limits.ts). @defaultValue DEFAULT_MAX_STREAMS_PER_CONNECTION */
  maxStreamsPerConnection?: number;
  /** Refuses calls of `methods` ("Service/Method") before the edge under overload (admission.ts). */
  admission?: { gate: Admission; methods: ReadonlySet<string> };
  /** Timeouts of this listener (README, "Connections and timeouts"). */
  timeouts: Pick<ConnectionsConfig, "headersTimeoutMs" | "requestTimeoutMs" | "sniffTimeoutMs" | "idleTimeoutMs">;
  /** The connection caps, shared with the gRPC listener. */
  connections: ConnectionGate;
  /** Metrics and access log of every finished call (rpc-observer.ts); none: neither. */
  observe?: Omit<RpcObserverDeps, "listener">;
}

export interface HttpListener {
  server: net.Server;
  port: number;
  /** Stops accepting, lets in-flight requests finish for up to graceMs, then closes every connection. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

export async function startHttpListener(opts: HttpListenerOptions): Promise<HttpListener> {
  // The request id of each call, fixed before connect sees the request (it goes out as a response
  // header, whatever the protocol and however the call ends) and handed to the edge.
  const requestIds = new WeakMap<NodeRequest, string>();
  const connect = connectNodeAdapter({
    routes(router: ConnectRouter) {
      for (const { service, impl } of opts.services) router.service(service, impl);
      gateRequests(router, opts.maxMessageBytes);
    },
    interceptors: [edgeInterceptor(opts.edge, { admission: opts.admission, observer: createRpcObserver({ listener: "http", ...opts.observe }) })],
    readMaxBytes: opts.maxMessageBytes,
    shutdownSignal: opts.shutdownSignal,
    contextValues(req) {
      const values = resetOnCut(req);
      const requestId = requestIds.get(req);
      if (requestId !== undefined) values.set(requestIdKey, requestId);
      return values;
    },
    fallback(_req, res) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    },
  });
  const allowAll = opts.corsOrigins.includes("*");
  const cors = corsMiddleware({
    origin: allowAll ? true : opts.corsOrigins,
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders, "authorization", "x-request-id"],
    exposedHeaders: [...connectCors.exposedHeaders, REQUEST_ID_HEADER],
    maxAge: 7200,
  });

  const handle = (req: NodeRequest, res: NodeResponse) => {
    // The cors middleware answers preflights itself and otherwise calls next.
    cors(req, res, () => {
      try {
        for (const route of opts.routes) if (route(req, res)) return;
        const sent = req.headers[REQUEST_ID_HEADER];
        const requestId = requestIdOf(typeof sent === "string" ? sent : undefined);
        requestIds.set(req, requestId);
        // Merged into whatever connect writes (writeHead keeps headers set before it).
        res.setHeader(REQUEST_ID_HEADER, requestId);
        connect(req, res);
      } catch (err) {
        opts.log.error({ err }, "http handler failed");
        if (!res.headersSent) res.writeHead(500);
        res.end();
      }
    });
  };
  // Node's other session limits (maxSessionInvalidFrames, maxSessionRejectedStreams, the 10 MB
  // maxSessionMemory) stay at their defaults: they cut off broken or abusive peers, and a
  // well-behaved client held to maxConcurrentStreams never reaches them.
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: opts.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION } }, handle);
  // requestTimeout bounds receiving the request only: Node stops counting once the request is
  // complete, so a WatchStatus stream over HTTP/1.1 still lives as long as the client wants.
  const { headersTimeoutMs, requestTimeoutMs, sniffTimeoutMs, idleTimeoutMs } = opts.timeouts;
  const h1 = http.createServer(
    { requestTimeout: requestTimeoutMs, headersTimeout: headersTimeoutMs, keepAliveTimeout: 5_000, connectionsCheckingInterval: Math.min(1000, headersTimeoutMs / 4) },
    handle,
  );
  // Node enforces headersTimeout and requestTimeout from a timer it starts on 'listening'. This
  // server never listens (the sniffing listener hands it sockets), so without this the timeouts
  // were never checked and slow-loris sockets stayed open for ever (issue 13, item 2).
  h1.emit("listening");
  h1.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    // As Node does when nobody listens: a request that timed out is told so before the close.
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.writable && (socket as Socket).bytesWritten === 0) {
      socket.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
    }
    socket.destroy();
  });

  // Tracked so shutdown can say GOAWAY to h2 sessions and end idle HTTP/1.1 sockets.
  const sockets = new Set<Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    guardResets(session, { log: opts.log, listener: "http" });
    closeWhenIdle(session, idleTimeoutMs);
  });

  const server = net.createServer((socket) => {
    socket.on("error", () => socket.destroy());
    if (!opts.connections.admit(socket, "http")) return;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A client that connects and sends fewer than SNIFF_BYTES would hold its socket for ever:
    // neither server has it yet, so neither server's timeouts apply.
    const sniffTimedOut = () => socket.destroy();
    socket.setTimeout(sniffTimeoutMs);
    socket.once("timeout", sniffTimedOut);
    let seen = Buffer.alloc(0);
    const sniff = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) seen = Buffer.concat([seen, chunk]);
      if (seen.length < SNIFF_BYTES) return;
      socket.off("readable", sniff);
      socket.setTimeout(0);
      socket.off("timeout", sniffTimedOut);
      socket.unshift(seen);
      const isH2 = seen.subarray(0, SNIFF_BYTES).equals(H2_PREFACE.subarray(0, SNIFF_BYTES));
      (isH2 ? h2 : h1).emit("connection", socket);
    };
    socket.on("readable", sniff);
  });
  server.on("error", (err) => opts.log.error({ err }, "http listener error"));

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;

  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    close(graceMs = 10_000) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const session of sessions) session.close();
        // Idle HTTP/1.1 keep-alive sockets would hold close() open; busy ones finish first.
        h1.close();
        h1.closeIdleConnections();
      });
      return closing;
    },
  };
}
