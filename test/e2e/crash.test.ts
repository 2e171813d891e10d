import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../../src/client/index.js";
import { stopAll, type HeraldProcess } from "../support/processes.js";
import { delay, type RecordedRequest } from "../support/stand-ins/behaviour.js";
import { startTwilioStandIn, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { eventsByNotification, sms, startE2e, twilioCredentials, twilioEnv, waitForStatus, type E2e } from "./support.js";

// A worker process SIGKILLed mid-batch, and a new one taking over: nothing accepted is lost or
// left stuck, and the only repeats the provider sees are the sends whose outcome died with the
// process, each repeated under the same idempotency token.

const TOTAL = 200;
const USERS = 40;
const KILL_AFTER = 60;

const creds = twilioCredentials();
let e2e: E2e;
let twilio: TwilioStandIn;

beforeAll(async () => {
  twilio = await startTwilioStandIn(creds);
  e2e = await startE2e({
    ...twilioEnv(twilio, creds),
    // A dead worker's claims may be taken over 2 s after they were made.
    HERALD_SEND_LEASE_MS: "2000",
    HERALD_WORKER_CONCURRENCY: "8",
  });
});

afterAll(async () => {
  await e2e?.stop();
  await stopAll("SIGKILL", 5_000);
  await twilio?.close();
});

describe("a worker process killed mid-batch", () => {
  it("loses nothing, leaves nothing stuck, and repeats only the sends whose outcome was not stored, under the same token", { timeout: 150_000 }, async () => {
    // A slow provider (50-100 ms an answer), so sends are in flight when the kill comes.
    twilio.behave(Array.from({ length: 2 * TOTAL }, () => delay(50 + Math.floor(Math.random() * 51))), delay(75));
    const ids = await Promise.all(Array.from({ length: TOTAL }, (_, i) => sms(e2e.client, `crash-${i % USERS}`, `crash #${i}`)));
    const indexOf = new Map(ids.map((id, i) => [id, i]));

    const first: HeraldProcess = await e2e.startWorker("sms", { name: "worker-1" });
    await twilio.waitForRequests(KILL_AFTER, 60_000);
    const killedAt = Date.now();
    const killed = await first.stop("SIGKILL");
    expect(killed.signal).toBe("SIGKILL");
    const requestsAtKill = twilio.requests.length;

    const secondStartedAt = Date.now();
    const second = await e2e.startWorker("sms", { name: "worker-2" });
    // The group hands the dead member's partitions over once its session times out (kafkajs: 30 s).
    await waitForStatus(e2e.pool, ids, [Status.SENT, Status.FAILED, Status.DEAD_LETTERED, Status.CANCELED], { timeoutMs: 120_000, workers: [second] });
    const tookOverAfter = Date.now() - secondStartedAt;
    // None stuck and none lost: every one is SENT, and the provider holds exactly one message each.
    await waitForStatus(e2e.pool, ids, Status.SENT, { timeoutMs: 1000 });
    expect(twilio.messages).toHaveLength(TOTAL);
    expect(new Set(twilio.messages.map((m) => m.idempotencyToken))).toEqual(new Set(ids));

    // Requests by notification, matched by their Body (not by the token, which is what is checked).
    const byNotification = new Map<number, RecordedRequest[]>();
    for (const r of twilio.requests) {
      const n = Number(/^crash #(\d+)$/.exec((r.body as Record<string, string>).Body ?? "")?.[1]);
      byNotification.set(n, [...(byNotification.get(n) ?? []), r]);
    }
    expect([...byNotification.keys()].sort((a, b) => a - b)).toEqual(ids.map((_, i) => i));
    // A request that arrived before the second worker existed came from the first.
    const fromFirst = (r: RecordedRequest) => r.receivedAt.getTime() < secondStartedAt;

    const events = await eventsByNotification(e2e.pool, ids);
    const sentBeforeKill = (id: string) => events.get(id)!.some((e) => e.status === Status.SENT && e.at.getTime() <= killedAt);
    // Mid-batch: some delivered and stored before the kill, some not.
    const storedBeforeKill = ids.filter(sentBeforeKill).length;
    expect(storedBeforeKill).toBeGreaterThan(0);
    expect(storedBeforeKill).toBeLessThan(TOTAL);

    // Expected repeats: the first request reached the provider from the killed worker, but its SENT was never stored.
    const expected = ids.filter((id) => {
      const reqs = byNotification.get(indexOf.get(id)!)!;
      return fromFirst(reqs[0]!) && !sentBeforeKill(id);
    });
    const duplicated = ids.filter((id) => byNotification.get(indexOf.get(id)!)!.length > 1);
    expect(duplicated.sort()).toEqual(expected.sort());
    expect(duplicated.length).toBeGreaterThan(0); // the kill caught sends in flight
    for (const id of ids) {
      const reqs = byNotification.get(indexOf.get(id)!)!;
      const tokens = reqs.map((r) => r.headers["i-twilio-idempotency-token"]);
      // Same token on every repeat, and it is the notification's id.
      expect(tokens).toEqual(reqs.map(() => id));
      if (duplicated.includes(id)) {
        // Exactly one repeat, sent by the second worker, after the claim was taken over.
        expect(reqs).toHaveLength(2);
        expect(fromFirst(reqs[1]!)).toBe(false);
        const details = events.get(id)!.map((e) => e.detail);
        expect(details.some((d) => d === "re-claimed after an expired lease" || d === "claim expired: worker lost")).toBe(true);
      }
    }
    const swept = duplicated.filter((id) => events.get(id)!.some((e) => e.detail === "claim expired: worker lost")).length;
    console.log(
      `crash: killed after ${requestsAtKill} requests (${storedBeforeKill} SENT stored); ` +
        `${duplicated.length - swept} taken over by re-claiming the redelivered record, ${swept} by the scheduler's stale-claim sweep; ` +
        `second worker finished ${tookOverAfter} ms after its start; ${duplicated.length} duplicate request(s) at the stand-in, ` +
        `each for a send whose outcome died with the first worker, each under the same token; ${twilio.messages.length} distinct messages`,
    );
    expect(second.exit()).toBeUndefined();
  });
});
