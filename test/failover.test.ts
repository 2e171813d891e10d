import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../src/client/index.js";
import { FAST, sms } from "./e2e/support.js";
import { startTestHerald, type TestHerald } from "./support/herald.js";
import { metricValue } from "./support/metric-values.js";
import { fail } from "./support/stand-ins/behaviour.js";
import { startTwilioStandIn, type TwilioStandIn } from "./support/stand-ins/twilio.js";
import { startVonageStandIn, type VonageStandIn } from "./support/stand-ins/vonage.js";
import { waitFor } from "./support/wait.js";

// Provider failover through Herald's real roles (API, relay, scheduler, SMS worker) on Kafka,
// PostgreSQL and Redis, with HERALD_SMS_PROVIDER=twilio,vonage against the two stand-ins: what is
// recorded on the notification and its events when Twilio's breaker opens and Vonage sends, and
// what a send comes to when every breaker is open.

let herald: TestHerald;
let twilio: TwilioStandIn;
let vonage: VonageStandIn;

beforeAll(async () => {
  const accountSid = `AC${randomBytes(16).toString("hex")}`;
  const authToken = randomBytes(16).toString("hex");
  const apiKey = randomBytes(4).toString("hex");
  const apiSecret = randomBytes(12).toString("hex");
  twilio = await startTwilioStandIn({ accountSid, authToken });
  vonage = await startVonageStandIn({ apiKey, apiSecret });
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    channels: ["sms"],
    env: {
      ...FAST,
      HERALD_SMS_PROVIDER: "twilio,vonage",
      TWILIO_BASE_URL: twilio.url,
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      VONAGE_BASE_URL: vonage.url,
      VONAGE_API_KEY: apiKey,
      VONAGE_API_SECRET: apiSecret,
      HERALD_SMS_FROM: "+15005550006",
      HERALD_MAX_ATTEMPTS: "8",
      HERALD_BREAKER_FAILURES: "2",
      // Open for the whole test: what is asserted is where sends go while it is.
      HERALD_BREAKER_COOLDOWN_MS: "600000",
    },
  });
}, 120_000);

afterAll(async () => {
  await herald?.stop();
  await twilio?.close();
  await vonage?.close();
});

interface EventView {
  status: Status;
  attempt: number;
  detail: string;
  provider: string;
}

async function events(id: string): Promise<EventView[]> {
  const r = await herald.db.pool.query<EventView>(
    "SELECT status, attempt, detail, provider FROM status_events WHERE notification_id = $1 ORDER BY sequence",
    [id],
  );
  return r.rows;
}

const metrics = (name: string, labels: Record<string, string>) => metricValue(herald.rt.metrics, name, labels);

describe("SMS failover in a running Herald", () => {
  it("Twilio failing opens its breaker; the notification is SENT through Vonage, recorded on the row and the events", async () => {
    twilio.behave([], fail(503, "service unavailable"));
    const id = await sms(herald.client(), "u-failover", "Your code is 123456");

    const row = await waitFor("the notification to be SENT", async () => {
      const r = await herald.db.pool.query<{ status: Status; provider: string; provider_message_id: string; attempts: number }>(
        "SELECT status, provider, provider_message_id, attempts FROM notifications WHERE id = $1",
        [id],
      );
      return r.rows[0]?.status === Status.SENT && r.rows[0];
    });
    expect(row).toMatchObject({ provider: "vonage", attempts: 3 });
    expect(row.provider_message_id).toBe(vonage.messages[0]!.messageId);
    expect(vonage.messages[0]!.clientRef).toBe(id);
    expect(twilio.requests).toHaveLength(2);

    const evs = (await events(id)).filter((e) => e.status !== Status.QUEUED && e.status !== Status.SENDING);
    expect(evs.map((e) => [Status[e.status], e.attempt, e.provider])).toEqual([
      ["RETRYING", 1, "twilio"],
      ["RETRYING", 2, "twilio"],
      ["SENT", 3, "vonage"],
    ]);
    expect(evs[2]!.detail).toBe("sent via vonage");

    const got = await herald.client().get({ id });
    expect(got.notification?.provider).toBe("vonage");
    expect(await metrics("herald_provider_circuit_state", { channel: "sms", provider: "twilio" })).toBe(2);
    expect(await metrics("herald_provider_failovers_total", { channel: "sms", from: "twilio", to: "vonage" })).toBe(1);
    // Outcomes and call times under the provider called, never under the list "twilio,vonage".
    expect(await metrics("herald_deliveries_total", { channel: "sms", provider: "twilio", outcome: "retry" })).toBe(2);
    expect(await metrics("herald_deliveries_total", { channel: "sms", provider: "vonage", outcome: "sent" })).toBe(1);
    expect(await metrics("herald_provider_request_duration_seconds_count", { channel: "sms", provider: "twilio" })).toBe(2);
    expect(await metrics("herald_provider_request_duration_seconds_count", { channel: "sms", provider: "vonage" })).toBe(1);
    expect(await metrics("herald_deliveries_total", { channel: "sms", provider: "twilio,vonage" })).toBe(0);
  });

  it("with every breaker open the attempt ends RETRYING, naming no provider", async () => {
    vonage.behave([], fail(500, "internal"));
    const id = await sms(herald.client(), "u-all-open", "Your code is 654321");
    const evs = await waitFor("a retry with every circuit open", async () => {
      const all = await events(id);
      return all.some((e) => e.detail === "sms: the circuit of every provider is open (twilio, vonage)") && all;
    });
    const retries = evs.filter((e) => e.status === Status.RETRYING);
    expect(retries.map((e) => [e.attempt, e.provider])).toEqual([
      [1, "vonage"],
      [2, "vonage"],
      [3, ""],
    ]);
    const r = await herald.db.pool.query<{ status: Status; provider: string }>("SELECT status, provider FROM notifications WHERE id = $1", [id]);
    expect(r.rows[0]).toEqual({ status: Status.RETRYING, provider: "" });
    expect(await metrics("herald_provider_circuit_state", { channel: "sms", provider: "vonage" })).toBe(2);
    // The third attempt called no provider: its retry is "none"'s, and no call time was observed for it.
    // Counted once its outcome is stored, so the event can be read a moment before the counter moves.
    await waitFor("the third retry counted under provider none", async () => (await metrics("herald_deliveries_total", { channel: "sms", provider: "none", outcome: "retry" })) >= 1);
    expect(await metrics("herald_deliveries_total", { channel: "sms", provider: "none", outcome: "retry" })).toBe(1);
    expect(await metrics("herald_deliveries_total", { channel: "sms", provider: "vonage", outcome: "retry" })).toBe(2);
    expect(await metrics("herald_provider_request_duration_seconds_count", { channel: "sms", provider: "vonage" })).toBe(3);
  });
});
