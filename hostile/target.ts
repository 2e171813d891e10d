import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createTestDatabase, type TestDatabase } from "../test/support/db.js";
import { heraldSite, spawnHerald, type HeraldProcess, type HeraldSite } from "../test/support/processes.js";

// The Herald the hostile suite attacks: `herald server`, `herald relay` and a webhook worker as
// real processes on a database and topic prefix of their own (the shared Kafka broker), and a
// local HTTP listener that stands for an internal service a webhook must never reach.

export interface Target {
  site: HeraldSite;
  server: HeraldProcess;
  /** Requests the internal listener received (SSRF target: must stay 0). */
  internalHits(): number;
  /** The internal listener's port, on 127.0.0.1 (and reachable as "vm" / "localhost"). */
  internalPort: number;
  db: TestDatabase;
  /** The server's resident set size now, in MiB. */
  serverRssMiB(): number;
  /** Whether the server process is still running. */
  serverAlive(): boolean;
  stop(): Promise<void>;
}

export async function startTarget(): Promise<Target> {
  const db = await createTestDatabase("herald_hostile");
  const site = await heraldSite(db.url);
  let hits = 0;
  const internal: Server = createServer((req, res) => {
    hits++;
    res.writeHead(400, { "content-type": "text/plain" });
    res.end("internal secret: do not leak");
  });
  await new Promise<void>((resolve) => internal.listen(0, "127.0.0.1", resolve));
  const internalPort = (internal.address() as AddressInfo).port;
  const env = site.env({
    HERALD_WEBHOOK_PROVIDER: "http",
    HERALD_WEBHOOK_SECRETS: `${site.tenant}:whsec_${Buffer.from("hostile-suite-secret-key!").toString("base64")}`,
    HERALD_EMAIL_PROVIDER: "sink",
    HERALD_SMS_PROVIDER: "sink",
    HERALD_PUSH_PROVIDER: "sink",
    HERALD_MAX_ATTEMPTS_WEBHOOK: "1",
    // An HTTP/2 connection without calls is closed after this (default 5 min), short enough for
    // the idle floods to be seen freed within the run; the other timeouts keep their defaults
    // (headers 10 s, protocol sniff 5 s), and the connection caps theirs.
    HERALD_IDLE_TIMEOUT_MS: "10000",
  });
  const server = spawnHerald("server", env, "server");
  const relay = spawnHerald("relay", env, "relay");
  const worker = spawnHerald("worker", env, "worker", ["--channel", "webhook"]);
  await Promise.all([server, relay, worker].map((p) => p.waitForLog(`herald ${p.role} started`, 120_000)));
  return {
    site,
    server,
    db,
    internalPort,
    internalHits: () => hits,
    serverRssMiB() {
      const status = readFileSync(`/proc/${server.pid}/status`, "utf8");
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      return kb / 1024;
    },
    serverAlive: () => server.exit() === undefined,
    async stop() {
      await Promise.all([worker, relay, server].map((p) => p.stop("SIGTERM", 20_000)));
      await new Promise<void>((resolve) => internal.close(() => resolve()));
      await db.drop();
    },
  };
}
