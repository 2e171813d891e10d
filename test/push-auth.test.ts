import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, type Notification } from "../gen/herald/v1/notification_pb.js";
import { FAST } from "./e2e/support.js";
import { startTestHerald, type TestHerald } from "./support/herald.js";
import { testServiceAccount } from "./support/service-account.js";
import { startFcmStandIn, type FcmStandIn } from "./support/stand-ins/fcm.js";
import { waitFor } from "./support/wait.js";

// Push that keeps working past its tokens' lifetimes: a whole Herald (API, relay, scheduler, push
// worker) configured with FCM_CREDENTIALS_FILE, its token_uri at the stand-in, which issues tokens
// that live a few seconds and refuses expired or revoked ones with 401.

let herald: TestHerald;
let fcm: FcmStandIn;

beforeAll(async () => {
  const account = testServiceAccount();
  fcm = await startFcmStandIn({
    projectId: account.projectId,
    serviceAccount: { clientEmail: account.clientEmail, publicKey: account.publicKey, tokenLifetimeSeconds: 3 },
  });
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    channels: ["push"],
    env: {
      ...FAST,
      HERALD_PUSH_PROVIDER: "fcm",
      FCM_BASE_URL: fcm.url,
      FCM_CREDENTIALS_FILE: account.file(`${fcm.url}/token`),
      HERALD_MAX_ATTEMPTS: "20",
    },
  });
});
afterAll(async () => {
  await herald?.stop();
  await fcm?.close();
});

let seq = 0;
async function push(): Promise<string> {
  const { notification } = await herald.client().create({
    notification: {
      channel: Channel.PUSH,
      recipient: { userId: "push-user", address: { case: "deviceToken", value: `device-${++seq}` } },
      body: { case: "content", value: { subject: "Hi", text: "there" } },
    },
  });
  return notification!.id;
}

async function settled(id: string): Promise<Notification> {
  return waitFor(`${id} to settle`, async () => {
    const { notification } = await herald.client().get({ id });
    const s = notification?.status;
    return s === Status.SENT || s === Status.FAILED || s === Status.DEAD_LETTERED ? notification : undefined;
  }, { timeoutMs: 60_000 });
}

describe("push with a service account", () => {
  it("keeps sending across several token expiries", async () => {
    const before = fcm.issued.length;
    const outcomes: Status[] = [];
    // One push after another until three more tokens have been minted (three expiries crossed).
    await waitFor(
      "three token expiries",
      async () => {
        outcomes.push((await settled(await push())).status);
        return fcm.issued.length >= before + 3;
      },
      { timeoutMs: 120_000, everyMs: 200 },
    );
    expect(outcomes.length).toBeGreaterThanOrEqual(3);
    expect(outcomes.every((s) => s === Status.SENT)).toBe(true);
  });

  it("a token revoked at FCM is replaced at once: the push is SENT on its first attempt", async () => {
    expect((await settled(await push())).status).toBe(Status.SENT);
    const revokedBefore = fcm.refused.revoked;
    fcm.revokeAll();
    const n = await settled(await push());
    expect(n.status).toBe(Status.SENT);
    expect(n.attempts).toBe(1);
    expect(fcm.refused.revoked).toBe(revokedBefore + 1);
  });

  it("a token endpoint that is down delays pushes (retried, transient) and they are SENT once it is back", async () => {
    fcm.revokeAll(); // so the next push needs a new token
    fcm.tokenEndpointDown = true;
    const id = await push();
    await waitFor("a failed attempt", async () => {
      const { notification } = await herald.client().get({ id });
      return notification?.status === Status.RETRYING && notification.lastError.includes("access token") ? notification : undefined;
    }, { timeoutMs: 60_000 });
    fcm.tokenEndpointDown = false;
    const n = await settled(id);
    expect(n.status).toBe(Status.SENT);
    expect(n.attempts).toBeGreaterThanOrEqual(2);
  });
});
