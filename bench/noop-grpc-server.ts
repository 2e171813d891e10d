import * as grpc from "@grpc/grpc-js";
import { rawUnary } from "./lib/raw-method.js";

// The ceiling: a bare @grpc/grpc-js server whose one unary method does
// nothing. Herald's Create is measured against it in the same run.
// Usage: node dist/bench/noop-grpc-server.js [PORT]   (0 or none: any free port)
// Prints {"listening": port} when ready, and {"calls": n} on SIGUSR2: h2load cannot see
// grpc-status, so the count of calls the handler answered is how a run proves they succeeded.

const port = Number(process.argv[2] ?? 0);
const server = new grpc.Server();
const empty = Buffer.alloc(0);
let calls = 0;
server.addService(
  { Noop: rawUnary("/bench.Noop/Noop") },
  {
    Noop: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      calls++;
      cb(null, empty);
    },
  },
);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) throw err;
  console.log(JSON.stringify({ listening: bound }));
});
process.on("SIGUSR2", () => console.log(JSON.stringify({ calls })));
process.on("SIGTERM", () => server.forceShutdown());
