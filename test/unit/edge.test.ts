import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { hashApiKey } from "../../src/domain/api-keys.js";
import { callKey } from "../../src/server/call-info.js";
import { createEdge } from "../../src/server/edge.js";

/** A silent root logger that counts the child loggers made from it and keeps their bindings. */
function countingLog() {
  const root = pino({ level: "silent" });
  const made: Record<string, unknown>[] = [];
  const child = root.child.bind(root);
  root.child = (bindings: Record<string, unknown>) => (made.push(bindings), child(bindings));
  return { root, made };
}

describe("edge.admit", () => {
  const apiKeys = new Map([[hashApiKey("key-a"), "tenant-a"]]);

  it("stores the call's tenant and request id, and makes its logger only when it is used", () => {
    const { root, made } = countingLog();
    const edge = createEdge({ apiKeys, log: root });
    const values = createContextValues();
    edge.admit(NotificationService.method.create, new Headers({ authorization: "Bearer key-a", "x-request-id": "req-1" }), values);
    const call = values.get(callKey)!;
    expect(call).toMatchObject({ tenant: "tenant-a", requestId: "req-1" });
    expect(made).toEqual([]);
    expect(call.log).toBe(call.log);
    expect(made).toEqual([{ requestId: "req-1", tenant: "tenant-a", rpc: "Create" }]);
  });

  it("refuses a missing or unknown key", () => {
    const edge = createEdge({ apiKeys, log: pino({ level: "silent" }) });
    for (const header of [new Headers(), new Headers({ authorization: "Bearer nope" })]) {
      let err: unknown;
      try {
        edge.admit(NotificationService.method.create, header, createContextValues());
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    }
  });
});

describe("edge.classify", () => {
  const edge = createEdge({ apiKeys: new Map(), log: pino({ level: "silent" }) });
  const method = NotificationService.method.create;

  it("makes a message with a lone surrogate well-formed, so a gRPC trailer can carry it", () => {
    const err = edge.classify(new ConnectError("got \ud800 and \udc00", Code.InvalidArgument, { "x-a": "1" }), method, createContextValues());
    expect([err.code, err.rawMessage, err.metadata.get("x-a")]).toEqual([Code.InvalidArgument, "got \ufffd and \ufffd", "1"]);
    expect(() => encodeURIComponent(err.rawMessage)).not.toThrow();
  });

  it("cuts a long message to 1,024 characters, never leaving half a surrogate pair", () => {
    const long = "x".repeat(1023) + "\u{1F600}" + "y".repeat(500_000);
    const err = edge.classify(new ConnectError(long, Code.InvalidArgument), method, createContextValues());
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`${"x".repeat(1023)}\ufffd…`);
    expect(() => encodeURIComponent(err.rawMessage)).not.toThrow();
    const short = new ConnectError("fine", Code.NotFound);
    expect(edge.classify(short, method, createContextValues())).toBe(short);
  });

  it("answers connect's parse error of a streamed request message as INVALID_ARGUMENT, not INTERNAL", () => {
    const err = edge.classify(new ConnectError("parse binary: premature EOF", Code.Internal), method, createContextValues());
    expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, "request is not a valid herald.v1.CreateRequest"]);
  });
});
