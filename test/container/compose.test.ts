import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { REPO, freePorts, runCommand, type RunResult } from "../support/processes.js";
import { waitFor } from "../support/wait.js";
import { containerState, containersConf, imageScript, podman, podmanOk } from "../support/podman.js";

// deploy/compose.yaml brought up with podman-compose as a user would (images from
// scripts/image.sh, no registry): PostgreSQL, Redis, three Kafka nodes, two APIs, the relay, the
// scheduler and two workers per channel, all in containers on the project's own network. The
// test sends notifications of every channel through both APIs and watches each reach SENT, then
// stops the project and checks every Herald container drained and exited 0. Its own project
// name, ports and API key; nothing is shared with the host's services. Not part of `npm test`
// (twenty containers on two cores): `npm run test:compose`.

const COMPOSE_FILE = `${REPO}/deploy/compose.yaml`;
const HERALD_SERVICES = [
  "api1",
  "api2",
  "relay",
  "scheduler",
  ...["email", "sms", "push", "webhook"].flatMap((c) => [`worker-${c}-1`, `worker-${c}-2`]),
];

const sends = [
  { channel: Channel.EMAIL, address: { case: "email", value: "ada@example.com" } },
  { channel: Channel.SMS, address: { case: "phone", value: "+14155550100" } },
  { channel: Channel.PUSH, address: { case: "deviceToken", value: "device-token-smoke" } },
  { channel: Channel.WEBHOOK, address: { case: "webhookUrl", value: "https://example.com/hooks/herald" } },
] as const;

describe("deploy/compose.yaml under podman-compose", { timeout: 900_000 }, () => {
  const project = `herald-smoke-${randomBytes(3).toString("hex")}`;
  const apiKey = `key-${randomBytes(12).toString("hex")}`;
  let env: Record<string, string>;
  let grpcPorts: number[];
  let httpPorts: number[];
  let clients: HeraldClient[] = [];

  const compose = (args: string[], timeoutMs: number): Promise<RunResult> =>
    runCommand("podman-compose", ["-p", project, "-f", COMPOSE_FILE, ...args], { env, timeoutMs, name: `podman-compose ${args[0]}` });
  const container = (service: string) => `${project}_${service}_1`;

  beforeAll(async () => {
    await imageScript(["all"], 1_700_000);
    const ports = await freePorts(4);
    grpcPorts = [ports[0]!, ports[1]!];
    httpPorts = [ports[2]!, ports[3]!];
    env = {
      CONTAINERS_CONF: await containersConf(),
      HERALD_API_KEYS: `smoke:${apiKey}`,
      HERALD_API1_GRPC_PORT: String(grpcPorts[0]),
      HERALD_API2_GRPC_PORT: String(grpcPorts[1]),
      HERALD_API1_HTTP_PORT: String(httpPorts[0]),
      HERALD_API2_HTTP_PORT: String(httpPorts[1]),
    };
    const up = await compose(["up", "-d"], 600_000);
    if (up.code !== 0) throw new Error(`podman-compose up exited ${up.code}\n${up.stdout.slice(-3000)}\n${up.stderr.slice(-3000)}`);
    clients = grpcPorts.map((port) => createHeraldClient({ address: `127.0.0.1:${port}`, apiKey }));
  }, 2_400_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    if (!env) return;
    await compose(["down", "-v", "-t", "30"], 300_000);
    // podman-compose 1.0.3's down leaves the project's network behind.
    await podman(["network", "rm", "-f", `${project}_default`]);
  }, 400_000);

  it("both API instances become ready (PostgreSQL migrated, the Kafka cluster's topics created)", async () => {
    for (const port of httpPorts) {
      await waitFor(
        `the API on ${port} to answer /readyz 200`,
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
        { timeoutMs: 600_000, everyMs: 1_000 },
      );
    }
  });

  it("notifications of every channel, sent through both APIs, reach SENT", async () => {
    const ids: string[] = [];
    for (const { channel, address } of sends) {
      for (let i = 0; i < 4; i++) {
        const res = await clients[i % 2]!.create({
          notification: {
            channel,
            recipient: { userId: `u-smoke-${i}`, address },
            body: { case: "content", value: { subject: "Smoke", text: `compose smoke ${i}` } },
          },
        });
        expect(res.notification?.status).toBe(Status.QUEUED);
        ids.push(res.notification!.id);
      }
    }
    for (const [n, id] of ids.entries()) {
      const sent = await waitFor(
        `notification ${id} to be SENT`,
        async () => {
          const { notification } = await clients[n % 2]!.get({ id });
          return notification?.status === Status.SENT && notification;
        },
        { timeoutMs: 300_000, everyMs: 500 },
      );
      expect(sent).toMatchObject({ id, status: Status.SENT });
    }
  });

  it("podman-compose stop: every Herald container drains on SIGTERM and exits 0", async () => {
    // Herald's services only: the Kafka nodes and the databases go with `down` afterwards.
    const stop = await compose(["stop", "-t", "60", ...HERALD_SERVICES], 600_000);
    expect(stop.code, stop.stderr.slice(-3000)).toBe(0);
    for (const service of HERALD_SERVICES) {
      const state = await containerState(container(service));
      expect({ service, running: state.Running, exitCode: state.ExitCode }).toEqual({ service, running: false, exitCode: 0 });
      const logs = await podmanOk(["logs", container(service)]);
      expect(logs, service).toContain('"msg":"stopped"');
    }
  });
});
