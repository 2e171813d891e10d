import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, createHeraldClient } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { freePorts, heraldSite, type HeraldSite } from "../support/processes.js";
import { waitFor } from "../support/wait.js";
import { IMAGE, containerState, imageScript, podman, podmanOk } from "../support/podman.js";

// The container image as a user runs it: scripts/image.sh builds it (or finds it built; the base
// image is cached), `podman run … herald:dev server` on the host's network against the shared
// PostgreSQL, Redis and Kafka, with this test's own database, topic prefix and ports. Not part of
// `npm test` (a first build takes minutes on two cores): `npm run test:image`.

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

async function containerLogs(name: string): Promise<LogLine[]> {
  const r = await podman(["logs", name]);
  return `${r.stdout}\n${r.stderr}`
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

describe("the Herald image", { timeout: 180_000 }, () => {
  const name = `herald-image-test-${randomBytes(4).toString("hex")}`;
  let db: TestDatabase;
  let site: HeraldSite;
  let healthPort: number;

  beforeAll(async () => {
    await imageScript(["build"], 1_500_000);
    db = await createTestDatabase("herald_image");
    site = await heraldSite(db.url);
    [healthPort] = (await freePorts(1)) as [number];
    const env = site.env({
      HERALD_HEALTH_PORT: `127.0.0.1:${healthPort}`,
      KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? "127.0.0.1:9092",
      REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    });
    const envArgs = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    await podmanOk(["run", "-d", "--name", name, "--network=host", ...envArgs, IMAGE, "server"]);
  }, 1_600_000);

  afterAll(async () => {
    await podman(["rm", "-f", "-t", "0", name]);
    await db?.drop();
  });

  it("runs as an unprivileged user, and the server role's /healthz and /readyz come up on the health port", async () => {
    expect(await podmanOk(["exec", name, "id", "-u"])).toBe("10001");
    const ready = await waitFor(
      "the container's /readyz to answer 200",
      async () => {
        const state = await containerState(name);
        if (!state.Running) throw new Error(`container not running: ${JSON.stringify(state)}\n${(await podman(["logs", name])).stdout.slice(-3000)}`);
        const r = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
        return r.status === 200 && r;
      },
      { timeoutMs: 120_000, everyMs: 250 },
    );
    expect(ready.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
    // The image's own HEALTHCHECK command, run as podman runs it.
    const check = await podman(["healthcheck", "run", name]);
    expect(check, check.stderr).toMatchObject({ code: 0 });
  });

  it("accepts a Create over gRPC and stores it in this test's database", async () => {
    const client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
    try {
      const res = await client.create({
        notification: {
          channel: Channel.EMAIL,
          recipient: { userId: "u-image", address: { case: "email", value: "ada@example.com" } },
          body: { case: "content", value: { subject: "Hi", text: "From a container" } },
        },
      });
      const id = res.notification!.id;
      expect(res.notification).toMatchObject({ status: Status.QUEUED, channel: Channel.EMAIL });
      const { rows } = await db.pool.query<{ status: number; tenant: string }>("SELECT status, tenant FROM notifications WHERE id = $1", [id]);
      expect(rows).toEqual([expect.objectContaining({ tenant: site.tenant })]);
    } finally {
      client.close();
    }
  });

  it("podman stop: SIGTERM reaches Herald, which drains and exits 0", async () => {
    const stop = await podman(["stop", "-t", "60", name], 120_000);
    expect(stop, stop.stderr).toMatchObject({ code: 0 });
    const state = await containerState(name);
    expect(state).toMatchObject({ Running: false, ExitCode: 0, OOMKilled: false });
    const logs = await containerLogs(name);
    expect(logs.find((l) => l.msg === "shutting down")).toMatchObject({ signal: "SIGTERM" });
    expect(logs.some((l) => l.msg === "stopped")).toBe(true);
    expect(logs.filter((l) => l.level >= 50)).toEqual([]);
  });
});
