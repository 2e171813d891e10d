import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { fromBinary, fromJsonString, type DescMethod } from "@bufbuild/protobuf";
import { createContextKey, createContextValues, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";

// connect-node parses a call's request message before any interceptor runs (every unary call,
// and the one request of a server stream on gRPC and gRPC-Web) and answers a message it cannot
// parse by itself, before authentication: binary garbage as INTERNAL with the parser's text,
// JSON with the parser's text, which can echo the input. A lone surrogate echoed that way makes
// connect's gRPC trailer encoding (encodeURIComponent) throw, and the call is never answered.
//
// So the HTTP listener reads each single-message request first. A message that does not parse
// is replaced by an empty one and marked in the call's context values; the edge then answers
// UNAUTHENTICATED without a key and INVALID_ARGUMENT with one, like the gRPC listener, which
// decodes after authenticating. Compressed messages are checked after decompressing them as
// connect would (gzip, br); a body over the size limit is passed on untouched for connect to
// refuse with RESOURCE_EXHAUSTED.

/** Set on a call whose request message did not parse; the edge answers it (edge.ts admit). */
export const malformedRequestKey = createContextKey(false, { description: "herald.malformed-request" });

/** Bytes of a gRPC / Connect streaming envelope header: one flag byte, a 32-bit length. */
const ENVELOPE_HEADER = 5;
const FLAG_COMPRESSED = 0b01;

interface Framing {
  /** Messages travel in envelopes (gRPC, gRPC-Web, Connect streaming), not bare (Connect unary). */
  enveloped: boolean;
  json: boolean;
  /** The header naming the request's compression. */
  encodingHeader: string;
}

function framingOf(contentType: string | null): Framing | undefined {
  const type = contentType?.split(";", 1)[0]?.trim().toLowerCase();
  switch (type) {
    case "application/proto":
    case "application/json":
      return { enveloped: false, json: type === "application/json", encodingHeader: "content-encoding" };
    case "application/connect+proto":
    case "application/connect+json":
      return { enveloped: true, json: type.endsWith("json"), encodingHeader: "connect-content-encoding" };
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc+json":
    case "application/grpc-web":
    case "application/grpc-web+proto":
    case "application/grpc-web+json":
      return { enveloped: true, json: type.endsWith("json"), encodingHeader: "grpc-encoding" };
    default:
      // Not a protocol connect serves: it answers that itself (415).
      return undefined;
  }
}

/** Wraps every handler of `router` (call after the services are registered) with the check above. */
export function gateRequests(router: ConnectRouter, maxMessageBytes: number): void {
  router.handlers.forEach((handler, i) => {
    const kind = handler.method.methodKind;
    // Streams of requests are parsed after the interceptors, where the edge classifies them.
    if (kind === "unary" || kind === "server_streaming") router.handlers[i] = gated(handler, maxMessageBytes);
  });
}

function gated(handler: UniversalHandler, maxMessageBytes: number): UniversalHandler {
  const check = async (req: UniversalServerRequest) => {
    const framing = req.method === "POST" ? framingOf(req.header.get("content-type")) : undefined;
    if (!framing || !isByteStream(req.body)) return handler(req);
    const read = await readUpTo(req.body, maxMessageBytes + ENVELOPE_HEADER);
    if (read.rest) return handler({ ...req, body: replay(read.chunks, read.rest) });
    const body = Buffer.concat(read.chunks);
    if (parses(handler.method, framing, req.header.get(framing.encodingHeader), body, maxMessageBytes)) {
      return handler({ ...req, body: replay([body]) });
    }
    const contextValues = req.contextValues ?? createContextValues();
    contextValues.set(malformedRequestKey, true);
    // The stand-in is sent uncompressed, so the request no longer names a compression.
    const header = new Headers(req.header);
    header.delete(framing.encodingHeader);
    return handler({ ...req, header, body: replay([emptyMessage(framing)]), contextValues });
  };
  return Object.assign(check, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/** The body's chunks up to `limit` bytes; `rest` is the unread remainder when there is more. */
async function readUpTo(body: AsyncIterable<Uint8Array>, limit: number): Promise<{ chunks: Uint8Array[]; rest?: AsyncIterator<Uint8Array> }> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { chunks };
    chunks.push(next.value);
    total += next.value.byteLength;
    if (total > limit) return { chunks, rest: it };
  }
}

async function* replay(chunks: Uint8Array[], rest?: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
  if (!rest) return;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

/** False when the message does not parse; true when it does, or when it is connect's to refuse for size. */
function parses(method: DescMethod, framing: Framing, encoding: string | null, body: Buffer, maxMessageBytes: number): boolean {
  let message = body;
  let compressed = encoding !== null && encoding !== "identity";
  if (framing.enveloped) {
    // Exactly one envelope: the single request of a unary call or a server stream.
    if (body.length < ENVELOPE_HEADER) return false;
    const flags = body[0]!;
    if ((flags & ~FLAG_COMPRESSED) !== 0 || body.readUInt32BE(1) !== body.length - ENVELOPE_HEADER) return false;
    message = body.subarray(ENVELOPE_HEADER);
    compressed = (flags & FLAG_COMPRESSED) !== 0;
  }
  try {
    if (compressed) message = decompress(encoding, message, maxMessageBytes);
    if (framing.json) fromJsonString(method.input, new TextDecoder().decode(message), { ignoreUnknownFields: true });
    else fromBinary(method.input, message);
    return true;
  } catch (err) {
    // Over the limit once decompressed: RESOURCE_EXHAUSTED, which connect answers itself.
    return (err as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE";
  }
}

function decompress(encoding: string | null, message: Buffer, maxMessageBytes: number): Buffer {
  const opts = { maxOutputLength: maxMessageBytes };
  if (encoding === "gzip") return gunzipSync(message, opts);
  if (encoding === "br") return brotliDecompressSync(message, opts);
  throw new Error(`compression ${encoding ?? "(none)"} is not accepted`);
}

/** An empty request message in the call's framing, which every request type accepts. */
function emptyMessage(framing: Framing): Buffer {
  const message = framing.json ? Buffer.from("{}") : Buffer.alloc(0);
  if (!framing.enveloped) return message;
  const header = Buffer.alloc(ENVELOPE_HEADER);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}
