import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { parseServiceAccount } from "../../src/config-fcm.js";
import { TransientError } from "../../src/errors.js";
import { createFcmProvider, type FcmConfig } from "../../src/workers/providers/fcm.js";
import type { Provider, RenderedMessage } from "../../src/workers/providers/provider.js";
import { closedPort } from "../support/stand-ins/behaviour.js";
import { startFcmStandIn, type FcmStandIn } from "../support/stand-ins/fcm.js";
import { testServiceAccount } from "../support/service-account.js";
import { waitFor } from "../support/wait.js";

// FCM with a service account: google-auth-library mints tokens at the stand-in's token endpoint
// (JWT-bearer grant, RS256 assertion checked with the account's public key), shares them between
// sends, refreshes them before they expire, and a refused token is replaced once per send.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

function message(): RenderedMessage {
  const id = crypto.randomUUID();
  return {
    notificationId: id, tenant: "acme", channel: Channel.PUSH,
    recipient: create(RecipientSchema, { userId: "u-1", address: { case: "deviceToken", value: "fcm-device-token:auth" } }),
    subject: "Hi", text: "there", html: "", data: {}, labels: {}, idempotencyKey: id, attempt: 1,
  };
}

const send = (p: Provider) => p.send(message(), new AbortController().signal);

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

async function setup(opts: { lifetimeSeconds?: number; tokenUri?: (standIn: FcmStandIn) => string; key?: ReturnType<typeof testServiceAccount> } = {}) {
  const account = testServiceAccount();
  const fcm = await startFcmStandIn({
    projectId: account.projectId,
    serviceAccount: { clientEmail: account.clientEmail, publicKey: account.publicKey, tokenLifetimeSeconds: opts.lifetimeSeconds },
  });
  cleanups.push(() => fcm.close());
  // The key the provider signs with: the account's own, or another one claiming to be it.
  const signer = opts.key ?? account;
  const json = { ...signer.json(opts.tokenUri?.(fcm) ?? `${fcm.url}/token`), client_email: account.clientEmail };
  const { serviceAccount } = parseServiceAccount("FCM_CREDENTIALS", JSON.stringify(json));
  const config: FcmConfig = { kind: "fcm", baseUrl: fcm.url, projectId: account.projectId, timeoutMs: 3000, serviceAccount };
  const provider = createFcmProvider(config);
  cleanups.push(() => provider.close());
  return { fcm, provider, account };
}

const tokenRequests = (fcm: FcmStandIn) => fcm.requests.filter((r) => r.path === "/token");
const sends = (fcm: FcmStandIn) => fcm.requests.filter((r) => r.path.endsWith("/messages:send"));

describe("fcm with a service account", () => {
  it("mints one token for concurrent sends, with a JWT-bearer grant the endpoint verifies", async () => {
    const { fcm, provider } = await setup();
    const results = await Promise.all(Array.from({ length: 12 }, () => send(provider)));
    expect(results).toHaveLength(12);
    expect(fcm.messages).toHaveLength(12);
    expect(fcm.issued).toHaveLength(1);
    const [grant] = tokenRequests(fcm);
    expect(grant?.body).toMatchObject({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer" });
    // Every send carried the minted token.
    expect(new Set(sends(fcm).map((r) => r.headers.authorization))).toEqual(new Set([`Bearer ${fcm.issued[0]!.token}`]));
  });

  it("replaces tokens before they expire, so sends across several expiries never carry an expired one", async () => {
    // 8 s tokens are refreshed 2 s before they expire: slack a busy machine's token request and
    // send fit in (with 4 s tokens, 1 s of slack was close to what a loaded CI run can stall).
    const { fcm, provider } = await setup({ lifetimeSeconds: 8 });
    // Sends one after another until the stand-in has issued a third token (two expiries crossed).
    const failures: string[] = [];
    await waitFor(
      "a third token",
      async () => {
        await send(provider).catch((err: Error) => failures.push(err.message));
        return fcm.issued.length >= 3;
      },
      { timeoutMs: 90_000 },
    );
    expect(failures).toEqual([]);
    expect(fcm.messages.length).toBeGreaterThanOrEqual(3);
    expect(fcm.refused).toEqual({ unknown: 0, expired: 0, revoked: 0 });
    // Each token was minted while the one before was still valid: the eager refresh (a quarter of
    // a short token's life), not a 401, replaced it.
    for (let i = 1; i < fcm.issued.length; i++) expect(fcm.issued[i]!.issuedAt).toBeLessThan(fcm.issued[i - 1]!.expiresAt);
  });

  it("a token revoked at FCM: one refresh and one retry, and the send succeeds", async () => {
    const { fcm, provider } = await setup();
    await send(provider);
    fcm.revokeAll();
    const result = await send(provider);
    expect(result.providerMessageId).toBe(fcm.messages[1]?.name);
    expect(fcm.refused.revoked).toBe(1);
    expect(fcm.issued).toHaveLength(2);
    expect(sends(fcm).map((r) => r.headers.authorization)).toEqual([
      `Bearer ${fcm.issued[0]!.token}`,
      `Bearer ${fcm.issued[0]!.token}`,
      `Bearer ${fcm.issued[1]!.token}`,
    ]);
  });

  it("a second 401 after a fresh token is transient and says the key is refused; no token in the message", async () => {
    const { fcm, provider } = await setup();
    fcm.refuseAll = true;
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(
      "fcm: HTTP 401: UNAUTHENTICATED: Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. (a freshly minted token was refused too: check the service account key and its Firebase permissions)",
    );
    expect(fcm.issued).toHaveLength(2);
    expect(sends(fcm)).toHaveLength(2);
    for (const t of fcm.issued) expect(err.message).not.toContain(t.token);
  });

  it("a token endpoint that is down is transient, and sends recover when it is back", async () => {
    const { fcm, provider } = await setup();
    fcm.tokenEndpointDown = true;
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("fcm: access token: the token endpoint answered HTTP 503: internal_failure: Backend Error");
    expect(sends(fcm)).toHaveLength(0);
    fcm.tokenEndpointDown = false;
    await send(provider);
    expect(fcm.messages).toHaveLength(1);
  });

  it("an unreachable token endpoint is transient", async () => {
    const port = await closedPort();
    const { provider } = await setup({ tokenUri: () => `http://127.0.0.1:${port}/token` });
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("fcm: access token: token endpoint unreachable: connection refused (ECONNREFUSED)");
  });

  it("an assertion signed with another key is refused by the endpoint (invalid_grant): transient, no send", async () => {
    const { fcm, provider } = await setup({ key: testServiceAccount() });
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("fcm: access token: the token endpoint answered HTTP 400: invalid_grant: Invalid JWT Signature.");
    expect(fcm.issued).toHaveLength(0);
    expect(sends(fcm)).toHaveLength(0);
  });
});
