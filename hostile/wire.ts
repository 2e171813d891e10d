import http2 from "node:http2";

// Raw requests, below any client library, so the suite can send what no well-behaved client
// would: bytes that are not the message, bodies past every limit, encodings that lie. Each
// answers with an outcome: the gRPC code name the server answered ("INVALID_ARGUMENT"), or
// what happened instead ("HANG": no answer in time; "RESET": the connection was cut;
// "HTTP_<n>": an HTTP answer with no gRPC or Connect status).

export type Outcome = string;

const GRPC_CODES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];
const grpcName = (n: number | string | undefined): Outcome => GRPC_CODES[Number(n)] ?? `GRPC_${String(n)}`;

/** A gRPC length-prefixed frame (flag 0: not compressed). */
export function frame(message: Uint8Array, flag = 0, declaredLength = message.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flag, 0);
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, message]);
}

/** One gRPC call over h2c on its own connection: the status from the trailers (or a trailers-only answer). */
export function grpcCall(opts: { address: string; path: string; body: Buffer; headers?: Record<string, string>; timeoutMs?: number }): Promise<Outcome> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let settled = false;
    const session = http2.connect(`http://${opts.address}`);
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done("HANG"), timeoutMs);
    session.on("error", () => done("RESET"));
    const req = session.request({ ":method": "POST", ":path": opts.path, "content-type": "application/grpc", te: "trailers", ...opts.headers });
    req.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) done(grpcName(headers["grpc-status"] as string));
      else if (headers[":status"] !== 200) done(`HTTP_${String(headers[":status"])}`);
    });
    req.on("trailers", (trailers: http2.IncomingHttpHeaders) => done(grpcName(trailers["grpc-status"] as string | undefined)));
    req.on("data", () => {});
    req.on("end", () => done("NO_STATUS"));
    req.on("error", () => done("RESET"));
    req.end(opts.body);
  });
}

/** A Connect unary call over HTTP/1.1: the code from the JSON error, or OK. */
export function connectUnary(opts: HttpCall & { contentType: string }): Promise<Outcome> {
  return post(opts, { "content-type": opts.contentType, "connect-protocol-version": "1" }, async (res) => {
    const text = await res.text();
    return res.status === 200 ? "OK" : connectError(text, res.status);
  });
}

/** A Connect server-streaming call over HTTP/1.1: the code from the end-of-stream message. */
export function connectStream(opts: HttpCall & { json?: boolean }): Promise<Outcome> {
  const contentType = opts.json ? "application/connect+json" : "application/connect+proto";
  return post(opts, { "content-type": contentType, "connect-protocol-version": "1" }, async (res) => {
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) return connectError(bytes.toString(), res.status);
    for (let at = 0; at + 5 <= bytes.length; ) {
      const flags = bytes.readUInt8(at);
      const length = bytes.readUInt32BE(at + 1);
      const body = bytes.subarray(at + 5, at + 5 + length);
      if (flags & 0x02) {
        const end = JSON.parse(body.toString() || "{}") as { error?: { code?: string } };
        return end.error?.code ? end.error.code.toUpperCase() : "OK";
      }
      at += 5 + length;
    }
    return "NO_STATUS";
  });
}

/** A gRPC-Web call over HTTP/1.1: grpc-status from the headers or the trailer frame. */
export function grpcWeb(opts: HttpCall & { json?: boolean }): Promise<Outcome> {
  const contentType = opts.json ? "application/grpc-web+json" : "application/grpc-web+proto";
  return post(opts, { "content-type": contentType, "x-grpc-web": "1" }, async (res) => {
    const status = res.headers.get("grpc-status");
    const bytes = Buffer.from(await res.arrayBuffer());
    if (status !== null) return grpcName(status);
    const trailer = /grpc-status:\s*(\d+)/i.exec(bytes.toString("latin1"));
    if (trailer) return grpcName(trailer[1]);
    return res.status === 200 ? "NO_STATUS" : `HTTP_${res.status}`;
  });
}

interface HttpCall {
  url: string;
  path: string;
  body: Uint8Array | string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** The code of a Connect error body, or the HTTP status when it is not one. */
function connectError(text: string, status: number): Outcome {
  try {
    const code = (JSON.parse(text) as { code?: string }).code;
    if (code) return code.toUpperCase();
  } catch {
    // not a Connect error body
  }
  return `HTTP_${status}`;
}

/** POSTs over HTTP/1.1 and reads the answer; a timeout is a hang, any other failure a reset. */
async function post(call: HttpCall, headers: Record<string, string>, read: (res: Response) => Promise<Outcome>): Promise<Outcome> {
  try {
    const res = await fetch(call.url + call.path, {
      method: "POST",
      headers: { ...headers, ...call.headers },
      body: call.body as unknown as BodyInit,
      signal: AbortSignal.timeout(call.timeoutMs ?? 10_000),
    });
    return await read(res);
  } catch (err) {
    const name = (err as Error).name;
    return name === "TimeoutError" || name === "AbortError" ? "HANG" : "RESET";
  }
}
