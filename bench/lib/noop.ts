import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { startChild } from "../processes.js";

// The no-op ceiling servers (bench/noop-*-server.ts) as child processes, with the two checks
// h2load cannot make itself: that a real gRPC client gets status OK, and how many calls the
// server's handler actually answered.

export type NoopKind = "grpc-js" | "connect-node";

export interface NoopServer {
  kind: NoopKind;
  /** 127.0.0.1:port */
  address: string;
  /** The method h2load calls. */
  path: string;
  /** Calls the handler has answered so far. */
  calls(): Promise<number>;
  /** The server process, for CPU readings. */
  pid: number | undefined;
  stop(): Promise<void>;
}

const scripts: Record<NoopKind, { file: string; path: string }> = {
  "grpc-js": { file: "../noop-grpc-server.js", path: "/bench.Noop/Noop" },
  // The only method the connect-node no-op implements.
  "connect-node": { file: "../noop-connect-server.js", path: "/herald.v1.NotificationService/Get" },
};

export async function startNoop(kind: NoopKind): Promise<NoopServer> {
  const { file, path } = scripts[kind];
  const child = await startChild([new URL(file, import.meta.url).pathname, "0"], {}, /"listening"/);
  const port = (JSON.parse(child.line) as { listening: number }).listening;
  const counts: Array<(n: number) => void> = [];
  createInterface({ input: child.proc.stdout! }).on("line", (line) => {
    const m = /^\{"calls":(\d+)\}$/.exec(line);
    if (m) counts.shift()?.(Number(m[1]));
  });
  return {
    kind,
    address: `127.0.0.1:${port}`,
    path,
    calls: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${kind} no-op server did not report its calls`)), 5000);
        counts.push((n) => {
          clearTimeout(timer);
          resolve(n);
        });
        child.proc.kill("SIGUSR2");
      }),
    pid: child.proc.pid,
    stop: () => child.stop(),
  };
}

/** One unary call with a real grpc-js client; resolves to the gRPC status code (0 = OK). */
export function grpcCall(address: string, path: string, body: Uint8Array, metadata: Record<string, string> = {}): Promise<number> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const id = (b: Buffer) => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, id, id, Buffer.from(body), md, { deadline: Date.now() + 10_000 }, (err) => {
      client.close();
      resolve(err ? Number(err.code) : 0);
    });
  });
}
