import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";

// Calls with bytes no generated client would send (truncated protobuf, random bytes, broken JSON),
// over HTTP/2, reading back exactly what the server answered: the status code of whichever
// protocol the request spoke, or the HTTP status when the answer is not an RPC status at all.

export type Protocol = "connect" | "connect-stream" | "grpc" | "grpc-web";

export interface RawAnswer {
  httpStatus: number;
  /** The RPC status (a Code, or 0 for OK); undefined when the answer carries none (e.g. HTTP 415). */
  code?: number;
  message?: string;
}

/** A request body in the protocol's framing: enveloped for every protocol but Connect unary. */
export function frame(protocol: Protocol, message: Buffer): Buffer {
  if (protocol === "connect") return message;
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

export function contentType(protocol: Protocol, codec: "proto" | "json"): string {
  switch (protocol) {
    case "connect":
      return `application/${codec}`;
    case "connect-stream":
      return `application/connect+${codec}`;
    case "grpc":
      return `application/grpc+${codec}`;
    case "grpc-web":
      return `application/grpc-web+${codec}`;
  }
}

/** One HTTP/2 connection to `base` for many raw calls. */
export interface RawClient {
  /** `encoding`: the compression the body's envelopes use (grpc-encoding). */
  call(opts: { path: string; protocol: Protocol; contentType: string; body: Buffer; apiKey?: string; encoding?: string }): Promise<RawAnswer>;
  close(): void;
}

export function rawClient(base: string): RawClient {
  const session = http2.connect(base);
  session.on("error", () => {});
  return {
    call({ path, protocol, contentType, body, apiKey, encoding }) {
      const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" };
      if (protocol === "connect-stream" || protocol === "connect") headers["connect-protocol-version"] = "1";
      if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
      if (encoding !== undefined) headers["grpc-encoding"] = encoding;
      return new Promise<RawAnswer>((resolve, reject) => {
        const req = session.request(headers);
        let head: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders = {};
        const chunks: Buffer[] = [];
        req.on("response", (h) => {
          head = h;
        });
        req.on("trailers", (t: http2.IncomingHttpHeaders) => {
          trailers = t;
        });
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("error", reject);
        // 'end': the server finished its answer; a call it never answers fails the test's timeout.
        req.on("end", () => resolve(answer(protocol, head, trailers, Buffer.concat(chunks))));
        req.end(body);
      });
    },
    close: () => session.close(),
  };
}

function answer(protocol: Protocol, head: http2.IncomingHttpHeaders, trailers: http2.IncomingHttpHeaders, body: Buffer): RawAnswer {
  const httpStatus = Number(head[":status"]);
  const grpcStatus = (h: http2.IncomingHttpHeaders) => h["grpc-status"];
  if (protocol === "grpc") {
    const status = grpcStatus(trailers) ?? grpcStatus(head);
    if (status === undefined) return { httpStatus };
    const message = (trailers["grpc-message"] ?? head["grpc-message"]) as string | undefined;
    return { httpStatus, code: Number(status), message: message === undefined ? undefined : decodeURIComponent(message) };
  }
  if (protocol === "grpc-web") {
    const status = grpcStatus(head);
    if (status !== undefined) return { httpStatus, code: Number(status) };
    const fields = trailerFrame(body);
    if (!fields) return { httpStatus };
    return { httpStatus, code: Number(fields.get("grpc-status")), message: decodeURIComponent(fields.get("grpc-message") ?? "") };
  }
  if (protocol === "connect-stream") {
    const end = lastEnvelope(body);
    if (!end) return { httpStatus };
    const json = JSON.parse(end.toString("utf8")) as { error?: unknown };
    if (!json.error) return { httpStatus, code: 0 };
    const err = errorFromJsonBytes(Buffer.from(JSON.stringify(json.error)), undefined, new ConnectError("unparseable", Code.Unknown));
    return { httpStatus, code: err.code, message: err.rawMessage };
  }
  if (httpStatus === 200) return { httpStatus, code: 0 };
  if (!String(head["content-type"]).startsWith("application/json")) return { httpStatus };
  const err = errorFromJsonBytes(body, undefined, new ConnectError("unparseable", Code.Unknown));
  return { httpStatus, code: err.code, message: err.rawMessage };
}

/** The gRPC-Web trailer frame (flag 0x80) of a response body, as header fields. */
function trailerFrame(body: Buffer): Map<string, string> | undefined {
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at]!;
    const length = body.readUInt32BE(at + 1);
    if (flags & 0x80) {
      const fields = new Map<string, string>();
      for (const line of body.subarray(at + 5, at + 5 + length).toString("utf8").split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      return fields;
    }
    at += 5 + length;
  }
  return undefined;
}

function lastEnvelope(body: Buffer): Buffer | undefined {
  let last: Buffer | undefined;
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    last = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
  }
  return last;
}
