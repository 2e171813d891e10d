import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createUnsubscribeTokens, type UnsubscribeClaims } from "../../src/domain/unsubscribe-token.js";

// The one-click unsubscribe link's token: it opens to exactly what was signed, under the same key
// only; any change, a token of another key, and anything that is not one open to nothing.

const key = randomBytes(32);
const tokens = createUnsubscribeTokens(key);
const claims: UnsubscribeClaims = {
  tenant: "acme",
  userId: "ada@example.com",
  category: "marketing",
  notificationId: "0190f3c2-1234-7abc-8def-0123456789ab",
  issuedAt: new Date("2026-03-01T12:34:56.000Z"),
};

/** The token with bit `bit` of its byte at `at` (in the decoded bytes) flipped. */
function flipped(token: string, at: number, bit = 1): string {
  const raw = Buffer.from(token.slice(3), "base64url");
  raw[at]! ^= bit;
  return `u1.${raw.toString("base64url")}`;
}

describe("unsubscribe tokens", () => {
  it("open to the claims signed, to the second; URL-safe and compact", () => {
    const token = tokens.sign(claims);
    expect(token).toMatch(/^u1\.[A-Za-z0-9_-]+$/);
    expect(token.length).toBeLessThan(120);
    expect(tokens.open(token)).toEqual(claims);
    // A new codec under the same key (another instance, after a restart) opens it too.
    expect(createUnsubscribeTokens(Buffer.from(key)).open(token)).toEqual(claims);
    const unicode = { ...claims, userId: "Zoë/ßigma 🚀", issuedAt: new Date("2026-03-01T12:34:56.789Z") };
    expect(tokens.open(tokens.sign(unicode))).toEqual({ ...unicode, issuedAt: new Date("2026-03-01T12:34:56.000Z") });
  });

  it("do not show the user id, tenant or category", () => {
    const token = tokens.sign({ ...claims, userId: "visible-user-id-123" });
    const raw = Buffer.from(token.slice(3), "base64url").toString("latin1");
    for (const plain of ["visible-user-id-123", "acme", "marketing"]) {
      expect(raw).not.toContain(plain);
      expect(token).not.toContain(Buffer.from(plain).toString("base64url").slice(0, 8));
    }
  });

  it("refuse every single-bit change, anywhere", () => {
    const token = tokens.sign(claims);
    const length = Buffer.from(token.slice(3), "base64url").length;
    for (let at = 0; at < length; at++) {
      for (const bit of [1, 0x80]) expect(tokens.open(flipped(token, at, bit)), `byte ${at} bit ${bit}`).toBeUndefined();
    }
  });

  it("refuse a token signed under another key, and one whose claims were swapped in from another token", () => {
    const other = createUnsubscribeTokens(randomBytes(32));
    expect(tokens.open(other.sign(claims))).toBeUndefined();
    const a = Buffer.from(tokens.sign(claims).slice(3), "base64url");
    const b = Buffer.from(tokens.sign({ ...claims, userId: "grace@example.com" }).slice(3), "base64url");
    // a's tag over b's ciphertext, and the reverse.
    expect(tokens.open(`u1.${Buffer.concat([a.subarray(0, 16), b.subarray(16)]).toString("base64url")}`)).toBeUndefined();
    expect(tokens.open(`u1.${Buffer.concat([b.subarray(0, 16), a.subarray(16)]).toString("base64url")}`)).toBeUndefined();
  });

  it("refuse what is not a token: empty, wrong prefix, bad alphabet, padding, truncated, extended, too long", () => {
    const token = tokens.sign(claims);
    for (const bad of [
      "",
      "u1.",
      "u2." + token.slice(3),
      token.slice(3),
      token + "=",
      token.replace(/.$/, "+"),
      token.slice(0, -1),
      token.slice(0, 30),
      token + "AAAA",
      "u1." + "A".repeat(5000),
      "u1." + "%2F..%2F",
    ]) {
      expect(tokens.open(bad), JSON.stringify(bad.slice(0, 40))).toBeUndefined();
    }
  });

  it("refuse to sign what could not be opened", () => {
    expect(() => tokens.sign({ ...claims, notificationId: "not-a-uuid" })).toThrow(/UUID/);
    expect(() => tokens.sign({ ...claims, userId: "" })).toThrow();
    expect(() => tokens.sign({ ...claims, category: "" })).toThrow();
  });
});
