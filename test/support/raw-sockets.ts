import net from "node:net";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

// Raw client sockets for the connection-hygiene tests: clients that misbehave on purpose
// (slow-loris, half a header block), which no real client library can be made to be.

export interface RawSocket {
  socket: net.Socket;
  /** Resolves when the socket has closed, whoever closed it. */
  closed: Promise<void>;
  /** Everything the server sent. */
  received(): Buffer;
}

/** A TCP connection to 127.0.0.1:`port`, from `localAddress` (any 127.x.y.z) when given. */
export async function rawConnect(port: number, localAddress?: string): Promise<RawSocket> {
  const socket = net.connect({ port, host: "127.0.0.1", localAddress });
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.on("error", () => undefined); // a refused or reset socket is what some tests expect
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await Promise.race([new Promise<void>((resolve) => socket.once("connect", () => resolve())), closed]);
  return { socket, closed, received: () => Buffer.concat(chunks) };
}

/** Whether `closed` has settled yet. */
export async function hasClosed(s: RawSocket): Promise<boolean> {
  return Promise.race([s.closed.then(() => true), new Promise<boolean>((resolve) => setImmediate(() => resolve(false)))]);
}

/** One HTTP/2 frame. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
export const H2_SETTINGS = 0x4;
export const H2_HEADERS = 0x1;
/** HPACK, all from the static table: :method POST, :scheme http, :path / */
export const H2_PARTIAL_HEADER_BLOCK = Buffer.from([0x83, 0x86, 0x84]);

/** The ports of a test Herald's two listeners. */
export function listenerPorts(herald: { httpUrl: string; grpcAddress: string }): { http: number; grpc: number } {
  return { http: Number(new URL(herald.httpUrl).port), grpc: Number(herald.grpcAddress.split(":")[1]) };
}

/** Lines `ss` prints for TCP sockets on the server side between `serverPort` and the client's `clientPort`. */
export async function serverSideSockets(serverPort: number, clientPort: number): Promise<string[]> {
  const { stdout } = await promisify(execFile)("ss", ["-Htan", `( sport = :${serverPort} and dport = :${clientPort} )`]);
  return stdout.split("\n").filter((l) => l.trim() !== "");
}
