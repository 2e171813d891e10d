import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeadLetterSchema } from "../../gen/herald/v1/dead_letter_pb.js";
import { Channel, Code, ConnectError, Status, StatusEventSchema, createDeadLetterClient, type DeadLetterClient } from "../../src/client/index.js";
import { readTopic } from "../support/kafka-reader.js";
import { stopAll, type HeraldProcess } from "../support/processes.js";
import { fail, hang, retryAfter, times, type RecordedRequest } from "../support/stand-ins/behaviour.js";
import { startTwilioStandIn, twilioError, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { eventsOf, rowOf, sms, startE2e, twilioCredentials, twilioEnv, waitForStatus, type E2e } from "./support.js";

// Provider failures through the real worker process, the scheduler and the relay: what is
// retried, when, how often, what ends FAILED or DEAD_LETTERED, and redrive. One SMS worker
// against a Twilio stand-in; tests run one after another, each programming the stand-in's next
// answers before it creates its notifications.

const BASE_MS = 200;
const CAP_MS = 2000;
const SEND_TIMEOUT_MS = 1000;
/**
 * What a retry may take beyond its drawn delay: the scheduler's poll (100 ms), its release
 * transaction, the relay's publish, the worker's fetch and claim, with room for a loaded
 * 2-core machine. Measured overhead is ~100-250 ms.
 */
const SLACK_MS = 1000;

const creds = twilioCredentials();
let e2e: E2e;
let worker: HeraldProcess;
let twilio: TwilioStandIn;
let dlq: DeadLetterClient;

beforeAll(async () => {
  twilio = await startTwilioStandIn(creds);
  e2e = await startE2e({
    ...twilioEnv(twilio, creds),
    HERALD_BACKOFF_BASE_MS: String(BASE_MS),
    HERALD_BACKOFF_CAP_MS: String(CAP_MS),
    HERALD_SEND_TIMEOUT_MS: String(SEND_TIMEOUT_MS),
    HERALD_MAX_ATTEMPTS: "4",
  });
  worker = await e2e.startWorker("sms");
  dlq = createDeadLetterClient({ address: e2e.grpcAddress, apiKey: e2e.apiKey });
});

afterAll(async () => {
  dlq?.close();
  await e2e?.stop();
  await stopAll("SIGKILL", 5_000);
  await twilio?.close();
});

const requestsFor = (id: string): RecordedRequest[] => twilio.requests.filter((r) => r.headers["i-twilio-idempotency-token"] === id);
const gaps = (reqs: readonly RecordedRequest[]) => reqs.slice(1).map((r, i) => r.receivedAt.getTime() - reqs[i]!.receivedAt.getTime());
const statuses = async (id: string) => (await eventsOf(e2e.pool, id)).map((e) => Status[e.status]);
const ceiling = (attempt: number) => Math.min(CAP_MS, BASE_MS * 2 ** (attempt - 1));

/** No further request for `id` comes within `ms`: what ended stays ended. */
async function settled(id: string, expected: number, ms = 1000): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  expect(requestsFor(id)).toHaveLength(expected);
}

async function dlqRecord(id: string) {
  const records = await readTopic(`${e2e.prefix}herald.dlq`, { until: (rs) => rs.some((r) => r.key === id), timeoutMs: 20_000 });
  return records.filter((r) => r.key === id).map((r) => ({ headers: r.headers, value: fromBinary(DeadLetterSchema, r.value) }));
}

async function deadLetterRow(id: string) {
  const r = await e2e.pool.query<{ status: Status; last_error: string; attempts: number; redrive_count: number; redriven: boolean }>(
    "SELECT status, last_error, attempts, redrive_count, redriven_at IS NOT NULL AS redriven FROM dead_letters WHERE notification_id = $1",
    [id],
  );
  return r.rows;
}

const observed: string[] = [];
afterAll(() => {
  if (observed.length) console.log(`observed retry delays (request to request):\n  ${observed.join("\n  ")}`);
});

describe("transient failures are retried through the scheduler", () => {
  it("a 5xx then success: RETRYING, then SENT on attempt 2, after a delay within [0, base] plus overhead", async () => {
    twilio.behave([times(3, fail(503))]);
    // Created together, so all three first attempts arrive before any retry.
    const ids = await Promise.all([0, 1, 2].map((i) => sms(e2e.client, `flaky-${i}`, `flaky ${i}`)));
    await waitForStatus(e2e.pool, ids, Status.SENT, { workers: [worker] });

    for (const id of ids) {
      const reqs = requestsFor(id);
      expect(reqs.map((r) => r.behaviour)).toEqual(["fail", "ok"]);
      expect(await statuses(id)).toEqual(["QUEUED", "SENDING", "RETRYING", "QUEUED", "SENDING", "SENT"]);
      const events = await eventsOf(e2e.pool, id);
      expect(events[2]).toMatchObject({ status: Status.RETRYING, attempt: 1, detail: "twilio: HTTP 503" });
      expect(events[3]).toMatchObject({ status: Status.QUEUED, attempt: 1, detail: "retry due" });
      expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.SENT, attempts: 2, last_error: "" });
      const [gap] = gaps(reqs);
      // From the failure's outcome to the release: the drawn delay plus the scheduler's lateness.
      const waited = events[3]!.at.getTime() - events[2]!.at.getTime();
      observed.push(`503 then ok: ${gap} ms (RETRYING → released ${waited} ms; backoff ceiling ${ceiling(1)} ms)`);
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThanOrEqual(ceiling(1) + SLACK_MS);
    }
  });

  it("herald.status carries exactly QUEUED, SENDING, RETRYING, QUEUED, SENDING, SENT with sequences 1..6", async () => {
    twilio.behave([fail(500)]);
    const id = await sms(e2e.client, "status-user", "watch me");
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const records = await readTopic(`${e2e.prefix}herald.status`, {
      until: (rs) => rs.filter((r) => r.key === id).length >= 6,
      timeoutMs: 20_000,
    });
    const events = records.filter((r) => r.key === id).map((r) => fromBinary(StatusEventSchema, r.value));
    expect(events.map((e) => [e.sequence, Status[e.status], e.attempt])).toEqual([
      [1, "QUEUED", 0],
      [2, "SENDING", 1],
      [3, "RETRYING", 1],
      [4, "QUEUED", 1],
      [5, "SENDING", 2],
      [6, "SENT", 2],
    ]);
    expect(events.every((e) => e.notificationId === id && e.channel === Channel.SMS && e.userId === "status-user")).toBe(true);
    expect(events[2]!.detail).toBe("twilio: HTTP 500");
  });

  it("a 429 with Retry-After: 2 is retried no sooner than 2 s later", async () => {
    twilio.behave([retryAfter(2)]);
    const id = await sms(e2e.client, "throttled", "slow down");
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const reqs = requestsFor(id);
    expect(reqs.map((r) => r.behaviour)).toEqual(["fail", "ok"]);
    expect((await eventsOf(e2e.pool, id))[2]).toMatchObject({ status: Status.RETRYING, detail: "twilio: HTTP 429" });
    const [gap] = gaps(reqs);
    observed.push(`429 Retry-After 2: ${gap} ms`);
    expect(gap).toBeGreaterThanOrEqual(2000);
    expect(gap).toBeLessThanOrEqual(2000 + SLACK_MS);
  });

  it("a provider that hangs: the send times out after HERALD_SEND_TIMEOUT_MS and is retried", async () => {
    twilio.behave([hang()]);
    const id = await sms(e2e.client, "hung", "are you there");
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const reqs = requestsFor(id);
    expect(reqs.map((r) => r.behaviour)).toEqual(["hang", "ok"]);
    expect((await eventsOf(e2e.pool, id)).slice(2, 4)).toMatchObject([
      { status: Status.RETRYING, attempt: 1, detail: `twilio: timed out after ${SEND_TIMEOUT_MS} ms` },
      { status: Status.QUEUED, attempt: 1, detail: "retry due" },
    ]);
    const [gap] = gaps(reqs);
    observed.push(`hang, timeout ${SEND_TIMEOUT_MS} ms, then ok: ${gap} ms`);
    expect(gap).toBeGreaterThanOrEqual(SEND_TIMEOUT_MS);
    expect(gap).toBeLessThanOrEqual(SEND_TIMEOUT_MS + ceiling(1) + SLACK_MS);
  });
});

describe("dead letters", () => {
  it("a permanent 4xx: FAILED at once, one provider request, a dead-letter row and a herald.dlq record", async () => {
    const refusal = "The 'To' number +14155550100 is not a valid phone number.";
    twilio.behave([twilioError(400, 21211, refusal)]);
    const id = await sms(e2e.client, "bad-number", "never arrives");
    await waitForStatus(e2e.pool, [id], Status.FAILED, { workers: [worker] });

    const error = `twilio: HTTP 400: error 21211: ${refusal}`;
    expect(await statuses(id)).toEqual(["QUEUED", "SENDING", "FAILED"]);
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.FAILED, attempts: 1, last_error: error, next_attempt_at: null });
    expect(await deadLetterRow(id)).toEqual([{ status: Status.FAILED, last_error: error, attempts: 1, redrive_count: 0, redriven: false }]);
    const [record, ...more] = await dlqRecord(id);
    expect(more).toEqual([]);
    expect(record!.value).toMatchObject({ notificationId: id, channel: Channel.SMS, status: Status.FAILED, lastError: error, attempts: 1 });
    await settled(id, 1);
  });

  it("always 503: DEAD_LETTERED after exactly 4 attempts, dead-lettered on herald.dlq; redriven over the API, then SENT", async () => {
    twilio.behave([], fail(503));
    const id = await sms(e2e.client, "always-down", "try and try");
    await waitForStatus(e2e.pool, [id], Status.DEAD_LETTERED, { workers: [worker], timeoutMs: 30_000 });

    expect(await statuses(id)).toEqual([
      ...["QUEUED", "SENDING", "RETRYING"],
      ...["QUEUED", "SENDING", "RETRYING"],
      ...["QUEUED", "SENDING", "RETRYING"],
      ...["QUEUED", "SENDING", "DEAD_LETTERED"],
    ]);
    await settled(id, 4);
    const reqs = requestsFor(id);
    expect(reqs.map((r) => r.behaviour)).toEqual(["fail", "fail", "fail", "fail"]);
    gaps(reqs).forEach((gap, i) => {
      observed.push(`503 x4, after attempt ${i + 1}: ${gap} ms (ceiling ${ceiling(i + 1)} ms)`);
      expect(gap).toBeLessThanOrEqual(ceiling(i + 1) + SLACK_MS);
    });
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.DEAD_LETTERED, attempts: 4, max_attempts: 4, last_error: "twilio: HTTP 503" });
    expect(await deadLetterRow(id)).toEqual([{ status: Status.DEAD_LETTERED, last_error: "twilio: HTTP 503", attempts: 4, redrive_count: 0, redriven: false }]);
    const [record, ...more] = await dlqRecord(id);
    expect(more).toEqual([]);
    expect(record!.headers.tenant).toBe("tenant-a");
    expect(record!.value).toMatchObject({
      notificationId: id,
      channel: Channel.SMS,
      status: Status.DEAD_LETTERED,
      lastError: "twilio: HTTP 503",
      attempts: 4,
      notification: { id, status: Status.DEAD_LETTERED },
    });

    // The provider recovers; an operator redrives.
    twilio.behave([]);
    const listed = await dlq.listDeadLetters({ filter: { channel: Channel.SMS, status: Status.DEAD_LETTERED } });
    expect(listed.deadLetters.map((d) => d.notificationId)).toEqual([id]);
    expect(await dlq.redriveDeadLetters({ target: { case: "notificationId", value: id } })).toMatchObject({ notificationIds: [id] });
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const after = requestsFor(id);
    expect(after.map((r) => r.behaviour)).toEqual(["fail", "fail", "fail", "fail", "ok"]);
    expect(new Set(after.map((r) => r.headers["i-twilio-idempotency-token"]))).toEqual(new Set([id]));
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.SENT, attempts: 5, max_attempts: 8, last_error: "" });
    expect((await eventsOf(e2e.pool, id)).slice(12).map((e) => [Status[e.status], e.attempt, e.detail])).toEqual([
      ["QUEUED", 4, "redriven"],
      ["SENDING", 5, "claimed"],
      ["SENT", 5, "sent via twilio"],
    ]);
    expect(await deadLetterRow(id)).toMatchObject([{ redrive_count: 1, redriven: true }]);
    expect((await dlq.listDeadLetters({ filter: { channel: Channel.SMS } })).deadLetters.map((d) => d.notificationId)).not.toContain(id);

    // Delivered now: a second redrive is refused.
    const again = await dlq.redriveDeadLetters({ target: { case: "notificationId", value: id } }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect([again?.code, again?.rawMessage]).toEqual([
      Code.FailedPrecondition,
      `notification ${id} is SENT; only FAILED and DEAD_LETTERED notifications can be redriven`,
    ]);
  });
});
