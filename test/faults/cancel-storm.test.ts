import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { batchWaiting, HELD_COMMIT_TIMEOUTS, lockNotifications } from "../support/table-lock.js";
import { watch } from "../support/watch.js";
import { waitFor } from "../support/wait.js";

// A client that cancels many calls at once on one connection must not take its other calls
// down with them. Node's HTTP/2 server allows 1,000 stream resets at once per connection
// (its rapid-reset protection; README, "Cancel storms"); this storm is within that budget and
// much larger than any client's normal cancel burst.

const STORM = 900;
const KEEPERS = 20;

let herald: TestHerald;

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server"], env: HELD_COMMIT_TIMEOUTS });
});
afterAll(async () => {
  await herald?.stop();
});

describe("a cancel storm on one gRPC connection", { timeout: 120_000 }, () => {
  it("leaves the connection's other calls, in flight meanwhile, answered OK (never INTERNAL)", async () => {
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
      await waitFor("the storm's streams open", () => herald.feed!.stats().subscribers >= subscribers + STORM, { timeoutMs: 60_000 });
      for (const w of storm) w.stop();
      const ended = await Promise.all(storm.map((w) => w.ended));
      expect(new Set(ended.map((e) => (e ? Code[e.code] : "clean")))).toEqual(new Set([Code[Code.Canceled]]));

      await lock.release();
      expect(await Promise.all(keepers)).toEqual(Array(KEEPERS).fill("OK"));
      // The connection itself is still the same healthy one.
      await expect(client.create({ notification: email(`after-${run}`) })).resolves.toBeDefined();
    } finally {
      await lock.release();
    }
  });
});
