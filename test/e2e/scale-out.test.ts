import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { freePorts, heraldSite, spawnHerald, stopAll, type HeraldProcess, type Role } from "../support/processes.js";
import { startSmtpStandIn, type SmtpStandIn } from "../support/stand-ins/smtp.js";
import { startTwilioStandIn, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { waitFor } from "../support/wait.js";
import { FAST, smtpEnv, sms, twilioCredentials, twilioEnv, waitForStatus } from "./support.js";

// Every role scaled out, as real processes on one database and topic prefix: two API instances,
// two relays (one leads, one stands by), two schedulers, two workers for SMS and two for email.
// Midway the leading relay and one scheduler are SIGKILLed. What a user must see: every
// notification sent exactly once (no worker dies, so the crash window of a send is never open:
// a Dispatch the new relay publishes again is recognised as delivered), scheduled ones released
// once though two schedulers poll, and each person's SMS arriving in the order they were created.

const USERS = 12;
const PER_USER = 10;
const SCHEDULED = 30;
const EMAILS = 40;

let db: TestDatabase;
let twilio: TwilioStandIn;
let smtp: SmtpStandIn;
const procs = new Map<string, HeraldProcess>();
const clients: HeraldClient[] = [];

beforeAll(async () => {
  const creds = twilioCredentials();
  twilio = await startTwilioStandIn(creds);
  smtp = await startSmtpStandIn();
  db = await createTestDatabase("herald_scale");
  const site = await heraldSite(db.url);
  const env = site.env({ ...FAST, ...twilioEnv(twilio, creds), ...smtpEnv(smtp) });
  const [grpc2, http2] = await freePorts(2);
  const start = (name: string, role: Role, extra: Record<string, string> = {}, args: string[] = []) => {
    const p = spawnHerald(role, { ...env, ...extra }, name, args);
    procs.set(name, p);
    return p;
  };
  start("api-1", "server");
  start("api-2", "server", { HERALD_GRPC_ADDR: `127.0.0.1:${grpc2}`, HERALD_HTTP_ADDR: `127.0.0.1:${http2}` });
  start("relay-1", "relay");
  start("relay-2", "relay");
  start("scheduler-1", "scheduler");
  start("scheduler-2", "scheduler");
  for (const n of [1, 2]) {
    start(`sms-${n}`, "worker", {}, ["--channel", "sms"]);
    start(`email-${n}`, "worker", {}, ["--channel", "email"]);
  }
  await Promise.all([...procs.values()].map((p) => p.waitForLog(p.role === "server" ? "herald server listening" : `herald ${p.role} started`, 120_000)));
  clients.push(createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey }), createHeraldClient({ address: `127.0.0.1:${grpc2}`, apiKey: site.apiKey }));
}, 240_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await stopAll("SIGTERM", 15_000);
  await db?.drop();
  await twilio?.close();
  await smtp?.close();
}, 120_000);

describe("every role scaled out", () => {
  it("sends everything exactly once and in each person's order while the leading relay and a scheduler die", { timeout: 400_000 }, async () => {
    const leader = await waitFor("a leading relay", () =>
      (["relay-1", "relay-2"] as const).find((n) => procs.get(n)!.logs().some((l) => l.msg === "relay is the leader")),
    );
    const standby = leader === "relay-1" ? "relay-2" : "relay-1";
    const client = (i: number) => clients[i % 2]!;

    // Scheduled SMS, due in a few seconds, for people of their own; both schedulers poll for them.
    const due = timestampFromDate(new Date(Date.now() + 4000));
    const scheduled = await Promise.all(
      Array.from({ length: SCHEDULED }, async (_, i) => {
        const { notification } = await client(i).schedule({
          notification: { channel: Channel.SMS, recipient: { userId: `later-${i}`, address: { case: "phone", value: "+14155550100" } }, body: { case: "content", value: { text: `later #${i}` } } },
          when: { case: "deliverAt", value: due },
        });
        return notification!.id;
      }),
    );
    const emails = await Promise.all(
      Array.from({ length: EMAILS }, async (_, i) => {
        const { notification } = await client(i).create({
          notification: { channel: Channel.EMAIL, recipient: { userId: `mail-${i % 10}`, address: { case: "email", value: `mail${i % 10}@example.com` } }, body: { case: "content", value: { subject: `scale #${i}`, text: "hi" } } },
        });
        return notification!.id;
      }),
    );

    // Each person's SMS one after the other, alternating between the API instances; the kill
    // comes when half of them are accepted.
    const smsIds: string[] = [];
    let killed = false;
    let killedAt = 0;
    await Promise.all(
      Array.from({ length: USERS }, async (_, u) => {
        for (let k = 0; k < PER_USER; k++) {
          smsIds.push(await sms(client(u + k), `person-${u}`, `person-${u} #${k}`));
          if (!killed && smsIds.length >= (USERS * PER_USER) / 2) {
            killed = true;
            killedAt = Date.now();
            await Promise.all([procs.get(leader)!.stop("SIGKILL"), procs.get("scheduler-1")!.stop("SIGKILL")]);
          }
        }
      }),
    );
    await procs.get(standby)!.waitForLog("relay is the leader", 60_000);
    const takeoverMs = Date.now() - killedAt;

    const all = [...smsIds, ...scheduled, ...emails];
    await waitForStatus(db.pool, all, Status.SENT, { timeoutMs: 240_000 });

    // Exactly once: one message per SMS at Twilio (its idempotency token is the notification id)
    // and one email per subject at the SMTP server.
    const tokens = twilio.messages.map((m) => m.idempotencyToken);
    expect(tokens.length).toBe(smsIds.length + scheduled.length);
    expect(new Set(tokens)).toEqual(new Set([...smsIds, ...scheduled]));
    const subjects = smtp.messages.map((m) => m.subject).sort();
    expect(subjects).toEqual(Array.from({ length: EMAILS }, (_, i) => `scale #${i}`).sort());

    // Each person's SMS arrived in the order they were created.
    for (let u = 0; u < USERS; u++) {
      const received = twilio.messages.filter((m) => m.body.startsWith(`person-${u} #`)).map((m) => Number(m.body.split("#")[1]));
      expect(received, `person-${u}`).toEqual(Array.from({ length: PER_USER }, (_, k) => k));
    }
    // Released once: every scheduled one has exactly one QUEUED-after-SCHEDULED step in its history.
    const { rows } = await db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM status_events WHERE notification_id = ANY($1::uuid[]) AND status = $2",
      [scheduled, Status.QUEUED],
    );
    expect(rows[0]!.n).toBe(SCHEDULED);
    console.info(`scale-out: the standby relay led ${takeoverMs} ms after the leader was killed`);
  });
});
