import { createServer, connect, type Server, type Socket } from "node:net";

// A TCP proxy a test can cut and restore, to take a dependency away from the code under test
// without touching the dependency itself (PostgreSQL is shared by every test file).

export interface TcpProxy {
  /** The port the proxy listens on (the same after a restore). */
  port: number;
  /** Connections piped right now. */
  openConnections(): number;
  /**
   * Stops listening and destroys every piped socket, both sides: open connections drop and
   * new ones are refused (ECONNREFUSED), as when the server's host goes away. Idempotent.
   */
  cut(): Promise<void>;
  /** Listens again on the same port. Idempotent. */
  restore(): Promise<void>;
  /** cut(), for cleanup. */
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let server: Server | undefined;
  let port = 0;

  const listen = async (): Promise<void> => {
    const s = createServer((downstream) => {
      const upstream = connect(target.port, target.host);
      const pair: [Socket, Socket] = [downstream, upstream];
      pairs.add(pair);
      for (const socket of pair) {
        // Either side going away ends the other; errors are expected here (that is the point).
        socket.on("error", () => {});
        socket.on("close", () => {
          pairs.delete(pair);
          downstream.destroy();
          upstream.destroy();
        });
      }
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        s.off("error", reject);
        resolve();
      });
    });
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("tcp proxy: no port");
    port = address.port;
    server = s;
  };

  const cut = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const pair of pairs) pair.forEach((socket) => socket.destroy());
    pairs.clear();
    // close() waits for connections to end; they are destroyed above, so it returns promptly.
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    openConnections: () => pairs.size,
    cut,
    async restore() {
      if (!server) await listen();
    },
    close: cut,
  };
}
