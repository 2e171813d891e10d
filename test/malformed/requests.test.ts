import { Writable } from "node:stream";
import { gzipSync } from "node:zlib";
import { create, toBinary, type DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { GetRequestSchema, NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";
import { contentType, frame, rawClient, type Protocol, type RawAnswer, type RawClient } from "../support/raw-rpc.js";

// Every malformed request on either listener is answered: UNAUTHENTICATED without a key (both
// listeners can tell before reading the message), INVALID_ARGUMENT naming the request type with
// one; never INTERNAL, never silence, and nothing logged at error level.

const methods: DescMethod[] = [NotificationService, DeadLetterService, TemplateService].flatMap((s) => s.methods);

/** Protobuf bytes that no request type parses. */
const garbage: Array<[string, Buffer]> = [
  // Field 1, length-delimited, promises 32 bytes and has 1.
  ["truncated protobuf", Buffer.from([0x0a, 0x20, 0x01])],
  // A varint longer than 10 bytes.
  ["overlong varint", Buffer.alloc(12, 0xff)],
  // Field 1 with wire type 7, which does not exist.
  ["bad wire type", Buffer.from([0x0f, 0x00])],
];
/** Request bodies for the JSON codec that do not parse. */
const badJson: Array<[string, Buffer]> = [
  ["broken JSON", Buffer.from('{"id":')],
  ["binary as JSON", Buffer.from([0x0a, 0x20, 0x01])],
];

interface Transport {
  name: string;
  listener: "http" | "grpc";
  /** The protocol spoken for `method` on this transport. */
  protocol(method: DescMethod): Protocol;
  codecs: Array<"proto" | "json">;
}

const transports: Transport[] = [
  { name: "Connect", listener: "http", protocol: (m) => (m.methodKind === "unary" ? "connect" : "connect-stream"), codecs: ["proto", "json"] },
  { name: "gRPC on the HTTP listener", listener: "http", protocol: () => "grpc", codecs: ["proto", "json"] },
  { name: "gRPC-Web", listener: "http", protocol: () => "grpc-web", codecs: ["proto", "json"] },
  { name: "gRPC listener", listener: "grpc", protocol: () => "grpc", codecs: ["proto"] },
];

let herald: TestHerald;
const logLines: Array<{ level: number; msg: string }> = [];
let clients: Record<"http" | "grpc", RawClient>;
/** "<kind> → <code>" → calls, for the record. */
const tally = new Map<string, number>();

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  herald = await startTestHerald({ roles: ["server"], log: pino({ level: "debug" }, sink) });
  clients = { http: rawClient(herald.httpUrl), grpc: rawClient(`http://${herald.grpcAddress}`) };
}, 60_000);

afterAll(async () => {
  clients?.http.close();
  clients?.grpc.close();
  await herald?.stop();
  console.log([...tally].map(([k, n]) => `${n} × ${k}`).join("\n"));
});

const path = (m: DescMethod) => `/${m.parent.typeName}/${m.name}`;

async function send(t: Transport, m: DescMethod, codec: "proto" | "json", body: Buffer, apiKey: string | undefined, kind: string): Promise<RawAnswer> {
  const protocol = t.protocol(m);
  const answer = await clients[t.listener].call({ path: path(m), protocol, contentType: contentType(protocol, codec), body: frame(protocol, body), apiKey });
  const label = `${kind} (${apiKey ? "key" : "no key"}) → ${answer.code === undefined ? `HTTP ${answer.httpStatus}` : Code[answer.code]}`;
  tally.set(label, (tally.get(label) ?? 0) + 1);
  return answer;
}

describe.each(transports)("$name", (t) => {
  const cases = t.codecs.flatMap((codec) => (codec === "proto" ? garbage : badJson).map(([kind, body]) => ({ codec, kind, body })));

  it.each(cases)("$kind ($codec) without a key is UNAUTHENTICATED on every RPC", async ({ codec, kind, body }) => {
    for (const m of methods) {
      const answer = await send(t, m, codec, body, undefined, kind);
      expect([m.name, answer.code]).toEqual([m.name, Code.Unauthenticated]);
    }
  });

  it.each(cases)("$kind ($codec) with a key is INVALID_ARGUMENT naming the request type on every RPC", async ({ codec, kind, body }) => {
    for (const m of methods) {
      const answer = await send(t, m, codec, body, KEY_A, kind);
      expect([m.name, answer.code, answer.message]).toEqual([m.name, Code.InvalidArgument, `request is not a valid ${m.input.typeName}`]);
    }
  });

  it("a content type that is no RPC protocol is HTTP 415 on every RPC", async () => {
    for (const m of methods) {
      const answer = await clients[t.listener].call({ path: path(m), protocol: "grpc", contentType: "text/plain", body: Buffer.from("hello"), apiKey: KEY_A });
      expect([m.name, answer.httpStatus, answer.code]).toEqual([m.name, 415, undefined]);
      const label = "text/plain content type (key) → HTTP 415";
      tally.set(label, (tally.get(label) ?? 0) + 1);
    }
  });
});

describe("a compressed message", () => {
  // Checked after decompressing, as connect would: garbage inside gzip is the same garbage.
  const get = NotificationService.method.get;

  it.each(["grpc", "grpc-web"] as const)("that does not parse over %s is INVALID_ARGUMENT, UNAUTHENTICATED without a key", async (protocol) => {
    const zipped = gzipSync(garbage[0]![1]);
    // An envelope flagged compressed (1), then the length.
    const body = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), zipped]);
    body.writeUInt32BE(zipped.length, 1);
    for (const [apiKey, code] of [[KEY_A, Code.InvalidArgument], [undefined, Code.Unauthenticated]] as const) {
      const answer = await clients.http.call({ path: path(get), protocol, contentType: contentType(protocol, "proto"), body, apiKey, encoding: "gzip" });
      expect([apiKey !== undefined, answer.code]).toEqual([apiKey !== undefined, code]);
    }
  });

  it("that parses is served, not refused as malformed", async () => {
    const zipped = gzipSync(toBinary(GetRequestSchema, create(GetRequestSchema, { id: "0190a000-0000-7000-8000-00000000abcd" })));
    const body = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), zipped]);
    body.writeUInt32BE(zipped.length, 1);
    const answer = await clients.http.call({ path: path(get), protocol: "grpc", contentType: "application/grpc+proto", body, apiKey: KEY_A, encoding: "gzip" });
    expect(answer.code).toBe(Code.NotFound);
  });
});

describe("a lone surrogate in JSON", () => {
  // Parsers quote what they could not read; a lone surrogate so quoted cannot be percent-encoded
  // into a gRPC trailer, and the call used to go unanswered with its stream held open.
  const get = NotificationService.method.get;
  const list = DeadLetterService.method.listDeadLetters;
  const bodies: Array<[DescMethod, string]> = [
    [get, '{"id":"\\ud800"}'],
    [list, '{"pageSize":"1\\ud800"}'],
    [list, '{"filter":{"errorContains":"\\udc00x"}}'],
  ];
  const jsonTransports = transports.filter((t) => t.listener === "http");

  it.each(jsonTransports)("over $name is answered INVALID_ARGUMENT, and UNAUTHENTICATED without a key", async (t) => {
    for (const [m, json] of bodies) {
      const body = Buffer.from(json);
      expect([json, (await send(t, m, "json", body, KEY_A, "lone surrogate")).code]).toEqual([json, Code.InvalidArgument]);
      expect([json, (await send(t, m, "json", body, undefined, "lone surrogate")).code]).toEqual([json, Code.Unauthenticated]);
    }
  });

  it("over the gRPC listener with a JSON content type is INVALID_ARGUMENT (it speaks protobuf only)", async () => {
    for (const [m, json] of bodies) {
      const answer = await clients.grpc.call({ path: path(m), protocol: "grpc", contentType: "application/grpc+json", body: frame("grpc", Buffer.from(json)), apiKey: KEY_A });
      expect([json, answer.code]).toEqual([json, Code.InvalidArgument]);
    }
  });

  it("over Connect on HTTP/1.1 (a browser's fetch) is answered and the connection released", async () => {
    for (const [m, json] of bodies) {
      const res = await fetch(herald.httpUrl + path(m), {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${KEY_A}`, connection: "close" },
        body: json,
      });
      expect([json, res.status, ((await res.json()) as { code: string }).code]).toEqual([json, 400, "invalid_argument"]);
    }
  });
});

describe("the log", () => {
  it("has nothing at error level after all of the above", () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((l) => l.level >= 50)).toEqual([]);
  });
});
