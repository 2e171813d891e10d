import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { loadReceiptsConfig } from "../../src/config-receipts.js";
import { sendgridEvent, sendgridPublicKey, verifySendgridSignature } from "../../src/receipts/sendgrid.js";
import { twilioCallback, twilioSignature, verifyTwilioSignature } from "../../src/receipts/twilio.js";
import { twilioSignatureFor } from "../support/stand-ins/twilio.js";

// The pure halves of the receipt routes: signatures and what each provider's words map to.
// (test/receipts.test.ts drives them through the real listener.)

const id = "0190a6f0-0000-7000-8000-000000000001";
const at = new Date("2026-03-01T12:00:00Z");

describe("Twilio signatures and callbacks", () => {
  const url = `https://herald.example.com/receipts/twilio?n=${id}`;
  const params = new URLSearchParams({ MessageStatus: "delivered", AccountSid: "AC1", MessageSid: "SM1", To: "+14155550100" });

  it("signs URL + sorted name/value pairs with HMAC-SHA1, as the stand-in (written apart) does", () => {
    expect(twilioSignature("token", url, params)).toBe(twilioSignatureFor("token", url, Object.fromEntries(params)));
    expect(verifyTwilioSignature("token", url, params, twilioSignature("token", url, params))).toBe(true);
  });

  it("refuses another token, another URL, a changed parameter, and no signature", () => {
    const good = twilioSignature("token", url, params);
    expect(verifyTwilioSignature("other", url, params, good)).toBe(false);
    expect(verifyTwilioSignature("token", url.replace(id, "0190a6f0-0000-7000-8000-000000000002"), params, good)).toBe(false);
    const changed = new URLSearchParams(params);
    changed.set("MessageStatus", "undelivered");
    expect(verifyTwilioSignature("token", url, changed, good)).toBe(false);
    expect(verifyTwilioSignature("token", url, params, undefined)).toBe(false);
    expect(verifyTwilioSignature("token", url, params, "short")).toBe(false);
  });

  it("maps delivered, undelivered and failed; in-between statuses are ignored; another account is unmatched", () => {
    const cb = (p: Record<string, string>, n: string | null = id) => twilioCallback(new URLSearchParams({ AccountSid: "AC1", MessageSid: "SM1", ...p }), { accountSid: "AC1", notificationId: n, at });
    expect(cb({ MessageStatus: "delivered" })).toEqual({
      kind: "receipt",
      receipt: { provider: "twilio", notificationId: id, providerMessageId: "SM1", at, status: Status.DELIVERED, detail: "twilio: delivered" },
    });
    expect(cb({ MessageStatus: "undelivered", ErrorCode: "30003" })).toMatchObject({ receipt: { status: Status.FAILED, detail: "twilio: undelivered, error 30003" } });
    expect(cb({ MessageStatus: "failed" })).toMatchObject({ receipt: { status: Status.FAILED, detail: "twilio: failed" } });
    for (const s of ["queued", "sending", "sent", "accepted"]) expect(cb({ MessageStatus: s })).toEqual({ kind: "ignored" });
    expect(cb({ MessageStatus: "delivered", AccountSid: "AC2" })).toEqual({ kind: "unmatched" });
    expect(cb({ MessageStatus: "delivered" }, null)).toEqual({ kind: "unmatched" });
    expect(cb({ MessageStatus: "delivered" }, "not-a-uuid")).toEqual({ kind: "unmatched" });
  });
});

describe("SendGrid signatures and events", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const base64 = publicKey.export({ format: "der", type: "spki" }).toString("base64");
  const body = Buffer.from(JSON.stringify([{ event: "delivered" }]));
  const ts = "1772366400";
  const signature = sign("sha256", Buffer.concat([Buffer.from(ts), body]), privateKey).toString("base64");

  it("verifies ECDSA P-256 over timestamp + body with the key as SendGrid shows it", () => {
    const key = sendgridPublicKey(base64);
    expect(verifySendgridSignature(key, ts, body, signature)).toBe(true);
    expect(verifySendgridSignature(key, "1772366401", body, signature)).toBe(false);
    expect(verifySendgridSignature(key, ts, Buffer.from(body.toString().replace("delivered", "bounce")), signature)).toBe(false);
    expect(verifySendgridSignature(key, ts, body, "bm90IGRlcg==")).toBe(false);
  });

  it("takes the key from HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY and refuses one that is not P-256", () => {
    expect(loadReceiptsConfig({ HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY: base64 }).sendgrid).toEqual({ publicKey: base64, maxAgeMs: 600_000 });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "der", type: "spki" }).toString("base64");
    expect(() => loadReceiptsConfig({ HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY: rsa })).toThrow(/HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY/);
    expect(() => loadReceiptsConfig({ HERALD_PUBLIC_URL: "ftp://x" })).toThrow(/HERALD_PUBLIC_URL/);
    expect(loadReceiptsConfig({ HERALD_PUBLIC_URL: "https://herald.example.com/" }).publicUrl).toBe("https://herald.example.com");
  });

  const ev = (event: string, extra: Record<string, unknown> = {}) =>
    sendgridEvent({ event, herald_notification_id: id, herald_tenant: "acme", "smtp-id": `<${id}@herald>`, ...extra }, at);

  it("maps each event type (README, Receipts)", () => {
    expect(ev("delivered")).toMatchObject({ kind: "receipt", receipt: { status: Status.DELIVERED, tenant: "acme", providerMessageId: `<${id}@herald>` } });
    expect(ev("bounce", { type: "bounce", status: "5.1.1", reason: "no such user" })).toMatchObject({
      receipt: { status: Status.FAILED, detail: "sendgrid: bounced 5.1.1: no such user", suppress: { reason: "hard_bounce" } },
    });
    const blocked = ev("bounce", { type: "blocked", reason: "spam content" });
    expect(blocked).toMatchObject({ receipt: { status: Status.FAILED, detail: "sendgrid: blocked: spam content" } });
    expect(blocked.kind === "receipt" && blocked.receipt.suppress).toBeUndefined();
    expect(ev("dropped", { reason: "Bounced Address" })).toMatchObject({ receipt: { status: Status.FAILED, suppress: { reason: "hard_bounce" } } });
    expect(ev("dropped", { reason: "Spam Reporting Address" })).toMatchObject({ receipt: { status: Status.FAILED, suppress: { reason: "complaint" } } });
    const invalid = ev("dropped", { reason: "Invalid" });
    expect(invalid.kind === "receipt" && invalid.receipt.suppress).toBeUndefined();
    const spam = ev("spamreport");
    expect(spam).toMatchObject({ receipt: { suppress: { reason: "complaint" } } });
    expect(spam.kind === "receipt" && spam.receipt.status).toBeUndefined();
    for (const e of ["processed", "deferred", "open", "click", "unsubscribe"]) expect(ev(e)).toEqual({ kind: "ignored" });
    expect(sendgridEvent({ event: "delivered" }, at)).toEqual({ kind: "unmatched" });
    expect(sendgridEvent("delivered", at)).toEqual({ kind: "unmatched" });
    expect(sendgridEvent(null, at)).toEqual({ kind: "unmatched" });
  });
});
