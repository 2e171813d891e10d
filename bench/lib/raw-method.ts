import type * as grpc from "@grpc/grpc-js";

// A unary method whose messages stay bytes: the ceiling servers (bench/noop-grpc-server.ts,
// bench/durable-grpc-server.ts) answer h2load without decoding or encoding anything.

const same = (b: Buffer) => b;

export function rawUnary(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream: false, responseStream: false, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same };
}
