import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { waitFor } from "../support/wait.js";
import { hasClosed, listenerPorts, rawConnect, type RawSocket } from "../support/raw-sockets.js";

// The connection caps (one remote address, and all sockets of both listeners together) refuse
// the sockets past them at once, log once per flood, and serve again when the flood is over
// (issue 13, item 2). And Health, which answers without an API key, bounds what a caller can
// make it hold or send back (item 8). Loopback addresses other than 127.0.0.1 stand in for other
// hosts.

const PER_ADDRESS = 10;
const TOTAL = 25;
const HEALTH_WATCHES = 3;

let herald: TestHerald;
let ports: { http: number; grpc: number };
const logged: Array<{ level: number; msg: string; reason?: string; refused?: number; byReason?: Record<string, number> }> = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n")) if (l) logged.push(JSON.parse(l) as (typeof logged)[number]);
      done();
    },
  });
  herald = await startTestHerald({
    roles: ["server"],
    env: {
      HERALD_MAX_CONNECTIONS: String(TOTAL),
      HERALD_MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
      HERALD_HEALTH_WATCH_MAX_STREAMS: String(HEALTH_WATCHES),
      // The flood's sockets send nothing: they must be held by the caps, not freed by a timeout.
      HERALD_SNIFF_TIMEOUT_MS: "600000",
    },
    log: pino({ level: "info" }, sink),
  });
  ports = listenerPorts(herald);
});
afterAll(async () => {
  await herald?.stop();
});

const limitLines = () => logged.filter((l) => /connection limit reached/.test(l.msg));

describe("connection caps", { timeout: 120_000 }, () => {
  it("refuse the connections past one address's cap and past the total at once, log once, and serve again after the flood", async () => {
    const sockets: RawSocket[] = [];
    const open = async (port: number, from: string, n: number) => {
      for (let i = 0; i < n; i++) sockets.push(await rawConnect(port, from));
    };
    try {
      // One address takes its cap on the HTTP listener, and one more.
      await open(ports.http, "127.0.0.2", PER_ADDRESS + 1);
      const overAddress = sockets.at(-1)!;
      await overAddress.closed;
      // Two more addresses, on the gRPC listener: the total is shared, so the 26th socket is refused.
      await open(ports.grpc, "127.0.0.3", PER_ADDRESS);
      await open(ports.grpc, "127.0.0.4", TOTAL - 2 * PER_ADDRESS + 1);
      const overTotal = sockets.at(-1)!;
      await overTotal.closed;

      const held = sockets.filter((s) => s !== overAddress && s !== overTotal);
      expect(held).toHaveLength(TOTAL);
      for (const s of held) expect(await hasClosed(s)).toBe(false);
      expect(limitLines()).toHaveLength(1);
      expect(limitLines()[0]).toMatchObject({ level: 40, reason: "per-address" });
    } finally {
      for (const s of sockets) s.socket.destroy();
    }
    const quiet = await waitFor("the all-clear line", () => logged.find((l) => /stopped refusing/.test(l.msg)));
    expect(quiet).toMatchObject({ level: 30, refused: 2, byReason: { "per-address": 1, total: 1 } });
    expect(limitLines()).toHaveLength(1);

    const healthz = await fetch(`${herald.httpUrl}/healthz`);
    expect(healthz.status).toBe(200);
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://${herald.grpcAddress}` }));
    expect((await health.check({ service: "" })).status).toBeDefined();
  });
});

describe("Health", { timeout: 120_000 }, () => {
  it.each([
    ["grpc", () => `http://${herald.grpcAddress}`],
    ["http (h2c)", () => herald.httpUrl],
  ])("answers a 500 KB service name NOT_FOUND with a short message: %s", async (_name, baseUrl) => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: baseUrl() }));
    const err = ConnectError.from(await health.check({ service: "s".repeat(500_000) }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage.length).toBeLessThanOrEqual(200);
    expect(err.rawMessage).toMatch(/\(500000 characters\)/);
  });

  it("ends Health.Watch streams beyond the cap RESOURCE_EXHAUSTED", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://${herald.grpcAddress}` }));
    const abort = new AbortController();
    try {
      const first = async () => {
        for await (const res of health.watch({ service: "" }, { signal: abort.signal })) return res.status;
        return undefined;
      };
      const kept = Array.from({ length: HEALTH_WATCHES }, () => health.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]());
      for (const stream of kept) {
        const res: IteratorResult<HealthCheckResponse> = await stream.next();
        expect(res.done ? "ended" : ServingStatus[res.value.status]).toMatch(/SERVING/);
      }
      const err = ConnectError.from(await first().catch((e: unknown) => e));
      expect(err.code).toBe(Code.ResourceExhausted);
    } finally {
      abort.abort();
    }
  });
});
