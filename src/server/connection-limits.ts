import type { Server, Socket } from "node:net";
import type { Logger } from "../log.js";

// Caps on the sockets a process holds open, shared by both listeners. Without them idle or
// slow-loris sockets pile up until the process runs out of file descriptors, and from then on
// every new connection, /healthz included, is reset with nothing logged (issue 13). A socket
// over a cap is destroyed at once, before a byte is read: refusing costs next to nothing, and the
// client's connect error says "try elsewhere or later" as plainly as a 503 could.
//
// The per-address cap keeps one host (or one misbehaving client library) from taking the whole
// budget; the total protects the descriptors. Sockets are counted from accept to close, whatever
// protocol they turn out to speak.

/** Quiet time after the last refusal before the gate logs that it stopped refusing. */
export const REFUSAL_QUIET_MS = 5000;

export interface ConnectionGate {
  /** Counts `socket` in, or destroys it when a cap is reached; false when refused. */
  admit(socket: Socket, listener: string): boolean;
  /** Sockets admitted and not yet closed. */
  open(): number;
  /** Sockets refused since start. */
  refused(): number;
}

export interface ConnectionGateOptions {
  maxConnections: number;
  maxConnectionsPerAddress: number;
  log: Logger;
  /** @defaultValue REFUSAL_QUIET_MS */
  quietMs?: number;
}

export function createConnectionGate(opts: ConnectionGateOptions): ConnectionGate {
  const byAddress = new Map<string, number>();
  let open = 0;
  let refusedTotal = 0;
  // One episode of refusals: a warn when it starts, an info when it has been quiet for quietMs,
  // so a flood of thousands of refused sockets costs two log lines, not thousands.
  let episode: { refused: number; byReason: Record<string, number>; quiet?: NodeJS.Timeout } | undefined;

  function refuse(socket: Socket, listener: string, reason: "total" | "per-address", address: string): false {
    socket.destroy();
    refusedTotal++;
    if (!episode) {
      opts.log.warn(
        { listener, reason, peer: address, open, fromPeer: byAddress.get(address) ?? 0, maxConnections: opts.maxConnections, maxConnectionsPerAddress: opts.maxConnectionsPerAddress },
        "connection limit reached: refusing new connections (closed at once)",
      );
      episode = { refused: 0, byReason: {} };
    }
    const current = episode;
    current.refused++;
    current.byReason[reason] = (current.byReason[reason] ?? 0) + 1;
    clearTimeout(current.quiet);
    current.quiet = setTimeout(() => {
      episode = undefined;
      opts.log.info({ refused: current.refused, byReason: current.byReason, open }, "connection limits stopped refusing");
    }, opts.quietMs ?? REFUSAL_QUIET_MS);
    current.quiet.unref();
    return false;
  }

  return {
    admit(socket, listener) {
      // A socket reset before it was accepted has no address; it is counted under one name.
      const address = socket.remoteAddress ?? "unknown";
      if (open >= opts.maxConnections) return refuse(socket, listener, "total", address);
      const fromAddress = byAddress.get(address) ?? 0;
      if (fromAddress >= opts.maxConnectionsPerAddress) return refuse(socket, listener, "per-address", address);
      open++;
      byAddress.set(address, fromAddress + 1);
      socket.once("close", () => {
        open--;
        const left = (byAddress.get(address) ?? 1) - 1;
        if (left === 0) byAddress.delete(address);
        else byAddress.set(address, left);
      });
      return true;
    },
    open: () => open,
    refused: () => refusedTotal,
  };
}

/**
 * Puts every connection `server` accepts through `gate`: for servers that take their sockets
 * themselves, as grpc-js's HTTP/2 servers do. Node has made the socket's session by the time this
 * runs; destroying the socket closes it.
 */
export function limitConnections(server: Server, gate: ConnectionGate, listener: string): void {
  server.on("connection", (socket: Socket) => gate.admit(socket, listener));
}
