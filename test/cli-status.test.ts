import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, createOperationsClient, type GetOverviewResponse, type OperationsClient } from "../src/client/index.js";
import { FAST } from "./e2e/support.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { runCli, spawnCli, stopAll } from "./support/processes.js";
import { waitFor } from "./support/wait.js";

// `herald status` as an operator runs it: the built CLI (dist/, `npm run build`) against a Herald
// whose email workers are not running, so a known number of records waits in herald.email. What
// is asserted is what the operator reads: the lag table's rows, the backlog lines, the JSON.

const N = 6;

describe("herald status", { timeout: 120_000 }, () => {
  let h: TestHerald;
  let ops: OperationsClient;
  let waiting: GetOverviewResponse;
  const flags = () => ["--addr", h.grpcAddress, "--api-key", KEY_A];

  beforeAll(async () => {
    h = await startTestHerald({ roles: ["server", "relay"], env: { ...FAST } });
    ops = createOperationsClient({ address: h.grpcAddress, apiKey: KEY_A });
    const client = h.client();
    for (let i = 0; i < N; i++) {
      await client.create({
        notification: {
          channel: Channel.EMAIL,
          recipient: { userId: `status-${i}`, address: { case: "email", value: `status-${i}@example.com` } },
          body: { case: "content", value: { subject: "s", text: "t" } },
        },
      });
    }
    waiting = await waitFor(`email lag ${N} with the outbox empty`, async () => {
      const o = await ops.getOverview({});
      return o.channels[0]!.lag === BigInt(N) && o.outboxPending === 0n && o;
    });
  });
  afterAll(async () => {
    await stopAll("SIGTERM", 15_000);
    ops?.close();
    await h?.stop();
  });

  it("prints each channel's lag per partition like kafka-consumer-groups --describe, then the backlog and the rates", async () => {
    const r = await runCli(["status", ...flags()]);
    expect(r, r.stderr).toMatchObject({ code: 0, timedOut: false });
    const lines = r.stdout.split("\n");
    const at = lines.indexOf(`email: lag ${N}`);
    expect(at).toBeGreaterThan(0);
    const [header, ...rows] = lines.slice(at + 1, at + 8).map((l) => l.split(/ {2,}/));
    expect(header).toEqual(["GROUP", "TOPIC", "PARTITION", "LOG-END-OFFSET", "COMMITTED-OFFSET", "LAG"]);
    // Nothing committed: the whole log-end of each partition is lag, and they add up to N. The
    // high lane's partitions follow the main lane's, under their own group and topic.
    expect(rows).toEqual(waiting.channels[0]!.partitions.map((p) => [p.group, p.topic, String(p.partition), String(p.logEndOffset), "-", String(p.lag)]));
    expect(rows.map((row) => `${row[0]} ${row[1]}`)).toEqual([
      ...Array<string>(3).fill("herald-worker-email herald.email"),
      ...Array<string>(3).fill("herald-worker-email-high herald.email.high"),
    ]);
    expect(rows.reduce((sum, row) => sum + Number(row[5]), 0)).toBe(N);
    expect(lines).toContain("sms: lag 0");
    expect(lines.find((l) => l.startsWith("outbox pending"))?.split(/ {2,}/)).toEqual(["outbox pending", "0", "oldest 0ms"]);
    expect(lines.find((l) => l.startsWith("dead letters open"))?.split(/ {2,}/)).toEqual(["dead letters open", "0"]);
    expect(lines.find((l) => l.startsWith("CHANNEL"))?.split(/ {2,}/)).toEqual(["CHANNEL", "SENT/s", "FAILED/s", "E2E-P50", "E2E-P99", "SAMPLES"]);
    expect(lines.find((l) => l.startsWith("email "))?.split(/ {2,}/)).toEqual(["email", "0.00", "0.00", "-", "-", "0"]);
  });

  it("--json prints the response", async () => {
    const r = await runCli(["status", "--json", ...flags()]);
    expect(r, r.stderr).toMatchObject({ code: 0, timedOut: false });
    const json = JSON.parse(r.stdout) as { lagAvailable: boolean; channels: Array<{ channel: string; group: string; lag?: string; partitions: Array<{ lag?: string }> }> };
    expect(json.lagAvailable).toBe(true);
    expect(json.channels.map((c) => [c.channel, c.group])).toEqual([
      ["CHANNEL_EMAIL", "herald-worker-email"],
      ["CHANNEL_SMS", "herald-worker-sms"],
      ["CHANNEL_PUSH", "herald-worker-push"],
      ["CHANNEL_WEBHOOK", "herald-worker-webhook"],
    ]);
    // int64 as a JSON string, as protobuf's JSON mapping says.
    expect(json.channels[0]!.lag).toBe(String(N));
    expect(json.channels[0]!.partitions.reduce((sum, p) => sum + Number(p.lag ?? 0), 0)).toBe(N);
  });

  it("--watch redraws until Ctrl-C; an unknown key exits 1 naming the refusal", async () => {
    const watch = spawnCli(["status", "--watch", "0.5", "--json", ...flags()]);
    const frames = () => watch.stdout().split("\n").filter(Boolean);
    await waitFor("three snapshots", () => frames().length >= 3 || watch.exit() !== undefined);
    expect(watch.exit(), watch.stderr()).toBeUndefined();
    const exit = await watch.stop("SIGINT", 30_000);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const frame of frames()) expect((JSON.parse(frame) as { channels: Array<{ lag?: string }> }).channels[0]!.lag).toBe(String(N));

    const refused = await runCli(["status", "--addr", h.grpcAddress, "--api-key", "not-a-key"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe("herald: [unauthenticated] unknown API key\n");
  });
});
