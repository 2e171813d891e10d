import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../../src/client/index.js";
import { stopAll, type HeraldProcess } from "../support/processes.js";
import { fail } from "../support/stand-ins/behaviour.js";
import { startTwilioStandIn, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { startVonageStandIn, type VonageStandIn } from "../support/stand-ins/vonage.js";
import { sms, startE2e, twilioCredentials, twilioEnv, waitForStatus, type E2e } from "./support.js";

// Two real `herald worker --channel sms` processes with HERALD_SMS_PROVIDER=twilio,vonage: the
// breaker that one worker's failures open holds for the other too, through Redis, so the second
// worker never sends to Twilio although it never saw it fail.

const creds = twilioCredentials();
const vonageCreds = { apiKey: randomBytes(4).toString("hex"), apiSecret: randomBytes(12).toString("hex") };
let e2e: E2e;
let twilio: TwilioStandIn;
let vonage: VonageStandIn;
let workers: HeraldProcess[];

beforeAll(async () => {
  twilio = await startTwilioStandIn(creds);
  vonage = await startVonageStandIn(vonageCreds);
  e2e = await startE2e({
    ...twilioEnv(twilio, creds),
    HERALD_SMS_PROVIDER: "twilio,vonage",
    VONAGE_BASE_URL: vonage.url,
    VONAGE_API_KEY: vonageCreds.apiKey,
    VONAGE_API_SECRET: vonageCreds.apiSecret,
    HERALD_MAX_ATTEMPTS: "8",
    HERALD_BREAKER_FAILURES: "2",
    HERALD_BREAKER_COOLDOWN_MS: "600000",
  });
  workers = [await e2e.startWorker("sms", { name: "sms-1" }), await e2e.startWorker("sms", { name: "sms-2" })];
}, 180_000);

afterAll(async () => {
  await e2e?.stop();
  await stopAll("SIGKILL", 5_000);
  await twilio?.close();
  await vonage?.close();
});

describe("failover across worker processes", () => {
  it("one worker's failures open Twilio's breaker for both; every later notification goes through Vonage", async () => {
    twilio.behave([], fail(503, "service unavailable"));
    const first = await sms(e2e.client, "u-first", "code 1");
    await waitForStatus(e2e.pool, [first], Status.SENT, { workers });
    expect(twilio.requests).toHaveLength(2);

    // Recipients spread over the partitions, so both workers deliver some.
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => sms(e2e.client, `u-${i}`, `code ${i}`)));
    await waitForStatus(e2e.pool, ids, Status.SENT, { workers });
    const r = await e2e.pool.query<{ provider: string; n: number }>(
      "SELECT provider, count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[]) GROUP BY provider",
      [[first, ...ids]],
    );
    expect(r.rows).toEqual([{ provider: "vonage", n: 21 }]);
    expect(twilio.requests).toHaveLength(2);
    const sentBy = workers.map((w) => w.logs().filter((l) => l.msg === "sent" && l.provider === "vonage").length);
    expect(sentBy.every((n) => n > 0), `sent per worker: ${sentBy.join(", ")}`).toBe(true);
  });
});
