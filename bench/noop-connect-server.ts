import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { GetResponseSchema, NotificationService } from "../gen/herald/v1/notification_service_pb.js";

// The Connect ceiling: a bare connect-node server on cleartext HTTP/2 whose one method,
// herald.v1.NotificationService/Get, answers an empty GetResponse (every other method is
// unimplemented). Same contract as noop-grpc-server.ts:
// Usage: node dist/bench/noop-connect-server.js [PORT]; prints {"listening": port} when ready
// and {"calls": n} on SIGUSR2.

const port = Number(process.argv[2] ?? 0);
let calls = 0;
const empty = create(GetResponseSchema);
const handler = connectNodeAdapter({
  routes(router) {
    router.service(NotificationService, {
      get() {
        calls++;
        return empty;
      },
    });
  },
});
const server = http2.createServer({}, handler);
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  console.log(JSON.stringify({ listening: typeof address === "object" && address ? address.port : port }));
});
process.on("SIGUSR2", () => console.log(JSON.stringify({ calls })));
process.on("SIGTERM", () => server.close());
