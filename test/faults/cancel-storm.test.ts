import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { batchWaiting, HELD_COMMIT_TIMEOUTS, lockNotifications } from "../support/table-lock.js";
import { watch } from "../support/watch.js";
import { waitFor } from "../support/wait.js";

// A client that cancels many calls at once on one connection must not take its other calls
// down with them. Node's HTTP/2 server allows 1,000 stream resets at once per connection (its
// rapid-reset protection; README, "Cancel storms"); past it nghttp2 closes the connection with
// GOAWAY(INTERNAL_ERROR) and a grpc-js client fails every call on it INTERNAL. This storm is
// half again that budget: Herald closes the connection gracefully first, so the calls on it
// finish, and says so in its log.

const STORM = 1500;
const KEEPERS = 20;

let herald: TestHerald;
const logged: Array<{ level: number; msg: string; listener?: string; resets?: number }> = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n")) if (l) logged.push(JSON.parse(l) as (typeof logged)[number]);
      done();
    },
  });
  herald = await startTestHerald({ roles: ["server"], env: HELD_COMMIT_TIMEOUTS, log: pino({ level: "warn" }, sink) });
});
afterAll(async () => {
  await herald?.stop();
});

describe("a cancel storm past the rapid-reset budget on one gRPC connection", { timeout: 180_000 }, () => {
  it("leaves the connection's other calls, in flight meanwhile, answered OK (never INTERNAL), and is logged", async () => {
    const client = herald.client();
    const run = randomBytes(4).toString("hex");
    const email = (userId: string) => ({
      channel: Channel.EMAIL,
      recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
      body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
    });
    const lock = await lockNotifications(herald.db.pool);
    try {
      // The unrelated calls: Creates held in their commit by the lock for the whole storm.
      const keepers = Array.from({ length: KEEPERS }, (_, i) =>
        client.create({ notification: email(`keep-${run}-${i}`) }).then(
          () => "OK",
          (err: unknown) => Code[ConnectError.from(err).code],
        ),
      );
      await batchWaiting(herald.db.pool);
      const subscribers = herald.feed!.stats().subscribers;
      const storm = Array.from({ length: STORM }, (_, i) => watch(client, { selector: { case: "userId", value: `storm-${run}-${i}` } }));
      await waitFor("the storm's streams open", () => herald.feed!.stats().subscribers >= subscribers + STORM, { timeoutMs: 120_000 });
      for (const w of storm) w.stop();
      const ended = await Promise.all(storm.map((w) => w.ended));
      expect(new Set(ended.map((e) => (e ? Code[e.code] : "clean")))).toEqual(new Set([Code[Code.Canceled]]));
      await waitFor("the server's log line", () => logged.some((l) => /rapid-reset limit/.test(l.msg)));
      const line = logged.find((l) => /rapid-reset limit/.test(l.msg))!;
      expect(line).toMatchObject({ level: 40, listener: "grpc" });
      expect(line.resets).toBeLessThan(1000);

      await lock.release();
      expect(await Promise.all(keepers)).toEqual(Array(KEEPERS).fill("OK"));
      // The client goes on, on a new connection, by itself.
      await expect(client.create({ notification: email(`after-${run}`) })).resolves.toBeDefined();
      const stored = await herald.db.pool.query("SELECT count(*)::int AS n FROM notifications WHERE user_id LIKE $1", [`%-${run}%`]);
      expect(stored.rows[0]).toEqual({ n: KEEPERS + 1 });
    } finally {
      await lock.release();
    }
  });
});
