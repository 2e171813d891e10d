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
