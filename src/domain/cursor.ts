import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

// Cursors are opaque to clients, and must reveal nothing about other tenants. A cursor names a
// position in the status feed, which every tenant shares: a plain position would let tenant B
// watch it jump by the number of tenant A's events between two of its own (or two heartbeats).
// So a cursor is the position sealed with AES-256-GCM under a key every API instance shares
// (src/store/cursor-key.ts), with a fresh nonce each time (two cursors for the same position do
// not even compare equal) and the tenant as associated data (a cursor works only for the
// tenant it was given to). "h2." names the format; "h1." cursors (the position in base 36, from
// before) are still read, so streams resume across an upgrade: they carry nothing their holder
// did not already see, and a forged one only picks where the holder's own events start.

const SEALED = "h2.";
const LEGACY = "h1.";
const LEGACY_BODY = /^[0-9a-z]{1,11}$/;
const NONCE = 12;
const TAG = 16;
const POSITION = 8;
const SEALED_BYTES = NONCE + POSITION + TAG;
// base64url of 36 bytes, no padding.
const SEALED_BODY = /^[A-Za-z0-9_-]{48}$/;

export interface CursorCodec {
  encode(tenant: string, position: number): string;
  /** The position a cursor names for `tenant`, or undefined when it is not one of ours for that tenant. */
  decode(tenant: string, cursor: string): number | undefined;
}

/** A codec under `secret` (any length: it is hashed into the AES key). */
export function createCursorCodec(secret: Uint8Array): CursorCodec {
  const key = createHash("sha256").update("herald cursor key v2\0").update(secret).digest();
  const aad = (tenant: string) => Buffer.from(`herald-cursor\0${tenant}`, "utf8");

  return {
    encode(tenant, position) {
      const nonce = randomBytes(NONCE);
      const cipher = createCipheriv("aes-256-gcm", key, nonce);
      cipher.setAAD(aad(tenant));
      const plain = Buffer.alloc(POSITION);
      plain.writeBigUInt64BE(BigInt(position));
      const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return SEALED + sealed.toString("base64url");
    },

    decode(tenant, cursor) {
      if (cursor.startsWith(LEGACY)) return decodeLegacy(cursor.slice(LEGACY.length));
      if (!cursor.startsWith(SEALED)) return undefined;
      const body = cursor.slice(SEALED.length);
      if (!SEALED_BODY.test(body)) return undefined;
      const sealed = Buffer.from(body, "base64url");
      if (sealed.length !== SEALED_BYTES) return undefined;
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, NONCE));
        decipher.setAAD(aad(tenant));
        decipher.setAuthTag(sealed.subarray(NONCE + POSITION));
        const plain = Buffer.concat([decipher.update(sealed.subarray(NONCE, NONCE + POSITION)), decipher.final()]);
        const position = plain.readBigUInt64BE();
        return position <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(position) : undefined;
      } catch {
        // Forged, altered, another tenant's, or sealed under another key.
        return undefined;
      }
    },
  };
}

function decodeLegacy(body: string): number | undefined {
  if (!LEGACY_BODY.test(body)) return undefined;
  const position = parseInt(body, 36);
  return Number.isSafeInteger(position) ? position : undefined;
}
