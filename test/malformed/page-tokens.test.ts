import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DeadLetterService } from "../../gen/herald/v1/dead_letter_pb.js";
import { createDeadLetterClient, type DeadLetterClient } from "../../src/client/index.js";
import { KEY_A, startTestHerald, type TestHerald } from "../support/herald.js";

// Forged ListDeadLetters page tokens, on both listeners: INVALID_ARGUMENT naming page_token,
// whatever numbers they carry, never INTERNAL from a parameter PostgreSQL cannot take; the
// extremes of the accepted range reach PostgreSQL and are answered.

const ID = "0190a8f0-0000-7000-8000-000000000000";
const token = (body: unknown) => Buffer.from(JSON.stringify(body)).toString("base64url");
const at = (createdUs: string, id = ID) => token({ v: 1, createdUs, id });

const forged: Array<[string, string]> = [
  ["int64 max", at("9223372036854775807")],
  ["int64 min", at("-9223372036854775808")],
  ["beyond int64", at("99999999999999999999999")],
  ["one µs before 0001-01-01", at("-62135596800000001")],
  ["one µs after 9999-12-31", at("253402300800000000")],
  ["exponent", at("1e3")],
  ["hex", at("0x10")],
  ["leading zero", at("01")],
  ["negative zero", at("-0")],
  ["a number, not a string", token({ v: 1, createdUs: 5, id: ID })],
  ["id not a UUID", at("0", "x")],
  ["another version", token({ v: 2, createdUs: "0", id: ID })],
  ["an extra field", token({ v: 1, createdUs: "0", id: ID, more: "1" })],
  ["a JSON array", token([1, "0", ID])],
  ["not base64url", "a+b/c="],
  ["too long", "A".repeat(401)],
];
const inRange: Array<[string, string]> = [
  ["0001-01-01", at("-62135596800000000")],
  ["9999-12-31T23:59:59.999999", at("253402300799999999")],
];

let herald: TestHerald;
let clients: Array<[string, Pick<Client<typeof DeadLetterService>, "listDeadLetters">]>;

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server"] });
  const grpc: DeadLetterClient = createDeadLetterClient({ address: herald.grpcAddress, apiKey: KEY_A });
  const connect = createClient(
    DeadLetterService,
    createConnectTransport({
      baseUrl: herald.httpUrl,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${KEY_A}`), next(req))],
    }),
  );
  clients = [
    ["gRPC listener", grpc],
    ["Connect", connect],
  ];
}, 60_000);

afterAll(async () => herald?.stop());

async function codeOf(call: Promise<unknown>): Promise<[Code | "ok", string]> {
  try {
    await call;
    return ["ok", ""];
  } catch (err) {
    const e = ConnectError.from(err);
    return [e.code, e.rawMessage];
  }
}

it.each(forged)("a page token %s is INVALID_ARGUMENT naming page_token on both listeners", async (_name, pageToken) => {
  for (const [listener, client] of clients) {
    expect([listener, ...(await codeOf(client.listDeadLetters({ pageToken })))]).toEqual([
      listener,
      Code.InvalidArgument,
      "page_token: must be a next_page_token from a previous response",
    ]);
  }
});

it.each(inRange)("a page token at %s, the edge of the accepted range, is answered", async (_name, pageToken) => {
  for (const [listener, client] of clients) {
    expect([listener, ...(await codeOf(client.listDeadLetters({ pageToken })))]).toEqual([listener, "ok", ""]);
  }
});
