import { createServer, connect, type Server, type Socket } from "node:net";

// A TCP proxy a test can cut, blackhole and restore, to take a dependency away from the code
// under test without touching the dependency itself (PostgreSQL is shared by every test file).

export interface TcpProxy {
  /** The port the proxy listens on (the same after a restore). */
  port: number;
  /** Connections open right now. */
  openConnections(): number;
  /**
   * Connections that lost bytes to a blackhole and are still open. Their protocol is out of
   * step for good (a query whose bytes were dropped is never answered): a client must drop them.
   */
  lostConnections(): number;
  /**
   * Stops listening and destroys every socket, both sides: open connections drop and
   * new ones are refused (ECONNREFUSED), as when the server's host goes away. Idempotent.
   */
  cut(): Promise<void>;
  /**
   * A partition that drops packets instead of refusing them: whatever either side sends is
   * dropped, nothing is closed or refused. New connections are accepted and held, their bytes
   * dropped, so a client's handshake waits as for a host that does not answer. Idempotent.
   */
  blackhole(): void;
  /**
   * Forwards again: listens on the same port after a cut; after a blackhole, open connections
   * forward again and new ones are piped. What was dropped stays lost, as when a partition
   * outlasts TCP's retransmissions; a connection that sent nothing meanwhile is as before.
   * Idempotent.
   */
  restore(): Promise<void>;
  /** cut(), for cleanup. */
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  // A downstream socket and its upstream (none for a connection accepted during a blackhole).
  type Group = { sockets: Socket[]; lost: boolean };
  const groups = new Set<Group>();
  let server: Server | undefined;
  let port = 0;
  let black = false;

  const track = (sockets: Socket[]): Group => {
    const group: Group = { sockets, lost: false };
    groups.add(group);
    for (const socket of sockets) {
      // Either side going away ends the other; errors are expected here (that is the point).
      socket.on("error", () => {});
      socket.on("close", () => {
        groups.delete(group);
        sockets.forEach((s) => s.destroy());
      });
    }
    return group;
  };
  const pipe = ({ sockets: [downstream, upstream] }: Group): void => {
    if (!downstream || !upstream) return; // accepted in a blackhole: its handshake is lost
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  };
  const silence = (group: Group): void => {
    for (const socket of group.sockets) {
      socket.unpipe();
      socket.removeAllListeners("data");
      socket.on("data", () => void (group.lost = true)); // read and dropped: nothing answers
      socket.resume();
    }
  };
  const resume = (group: Group): void => {
    group.sockets.forEach((socket) => socket.removeAllListeners("data"));
    pipe(group);
  };

  const listen = async (): Promise<void> => {
    const s = createServer((downstream) => {
      if (black) return silence(track([downstream]));
      pipe(track([downstream, connect(target.port, target.host)]));
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
    black = false;
    for (const group of groups) group.sockets.forEach((socket) => socket.destroy());
    groups.clear();
    // close() waits for connections to end; they are destroyed above, so it returns promptly.
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    openConnections: () => groups.size,
    lostConnections: () => [...groups].filter((g) => g.lost).length,
    cut,
    blackhole() {
      if (black) return;
      black = true;
      groups.forEach(silence);
    },
    async restore() {
      if (black) groups.forEach(resume);
      black = false;
      if (!server) await listen();
    },
    close: cut,
  };
}
