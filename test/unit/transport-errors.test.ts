import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { toConnectError } from "../../src/client/transport-errors.js";

const serviceError = (code: status, details: string): ServiceError =>
  Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new Metadata() });

describe("grpc-js errors as a Herald client reports them", () => {
  it("a call cut by its connection (GOAWAY with an error, RST_STREAM without a status) is UNAVAILABLE, which clients retry", () => {
    for (const details of [
      "Received RST_STREAM with code 2 triggered by internal client error: Session closed with error code 2",
      "Received RST_STREAM with code 0",
    ]) {
      const err = toConnectError(serviceError(status.INTERNAL, details));
      expect(Code[err.code]).toBe(Code[Code.Unavailable]);
      expect(err.rawMessage).toContain(details);
    }
  });

  it("the server's own INTERNAL answer, and any other code, keep their code and message", () => {
    expect(Code[toConnectError(serviceError(status.INTERNAL, "internal error")).code]).toBe(Code[Code.Internal]);
    const md = new Metadata();
    md.set("retry-after-ms", "40");
    const refused = toConnectError(Object.assign(serviceError(status.RESOURCE_EXHAUSTED, "server overloaded, retry after 40 ms"), { metadata: md }));
    expect(Code[refused.code]).toBe(Code[Code.ResourceExhausted]);
    expect(refused.rawMessage).toBe("server overloaded, retry after 40 ms");
    expect(refused.metadata.get("retry-after-ms")).toBe("40");
  });
});
