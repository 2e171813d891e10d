import { createCipheriv, createHmac, timingSafeEqual } from "node:crypto";

// The token of a one-click unsubscribe link (RFC 8058; README "One-click unsubscribe"). It must
// name who unsubscribes from what (tenant, user id, category) without a database row behind it:
// links live in mailboxes for years, longer than the notification that carried them (retention,
// erasure). So the token carries its claims, authenticated with HMAC-SHA256 under a deployment
// key (herald_secrets 'unsubscribe-link', src/store/unsubscribes.ts): a link nobody signed, or one
// changed by a single bit, opens to nothing.
//
// The claims are also encrypted, so the link does not show the user id and tenant to whoever
// sees the URL (a forwarded mail, a proxy's log). The construction is SIV (RFC 5297's shape): the
// HMAC of the claims, cut to 128 bits, is both the tag and the IV of AES-256-CTR over them; the
// keys for the two are derived apart from the one secret. Deterministic: the same claims give the
// same token, which is harmless here (the claims hold the notification id, so no two mails share
// one). Tokens do not expire (CAN-SPAM wants a link to work for 30 days at least, and a stale
// unsubscribe still means "stop"); deleting the secret invalidates every link sent.
//
// "u1." names the format. Bytes: tag(16) ‖ CTR(issued s u32 ‖ notification id 16 ‖ tenant len u8 ‖
// tenant ‖ category len u8 ‖ category ‖ user id), base64url without padding.

export interface UnsubscribeClaims {
  tenant: string;
  userId: string;
  category: string;
  /** The notification whose mail carried the link (a UUID): which message the click came from. */
  notificationId: string;
  /** When the link was made, to the second. */
  issuedAt: Date;
}

export interface UnsubscribeTokens {
  sign(claims: UnsubscribeClaims): string;
  /** The claims of a token we signed, or undefined: forged, altered, malformed or under another key. */
  open(token: string): UnsubscribeClaims | undefined;
}

const PREFIX = "u1.";
const TAG = 16;
const FIXED = 4 + 16 + 1 + 1;
// A user id is at most 256 characters (1,024 UTF-8 bytes), tenant and category under 256 bytes:
// anything longer is not one of ours, and is refused before any work.
const MAX_BYTES = TAG + FIXED + 255 + 255 + 1024;
const MAX_CHARS = PREFIX.length + Math.ceil((MAX_BYTES * 4) / 3);
const BODY = /^[A-Za-z0-9_-]+$/;
const UUID_HEX = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

export function createUnsubscribeTokens(secret: Uint8Array): UnsubscribeTokens {
  const derive = (purpose: string) => createHmac("sha256", secret).update(`herald unsubscribe link v1\0${purpose}`).digest();
  const macKey = derive("mac");
  const encKey = derive("enc");
  const tagOf = (plain: Buffer) => createHmac("sha256", macKey).update(plain).digest().subarray(0, TAG);
  const ctr = (iv: Buffer, data: Buffer) => {
    const cipher = createCipheriv("aes-256-ctr", encKey, iv);
    return Buffer.concat([cipher.update(data), cipher.final()]);
  };

  return {
    sign(c) {
      const tenant = Buffer.from(c.tenant, "utf8");
      const category = Buffer.from(c.category, "utf8");
      if (tenant.length === 0 || tenant.length > 255 || category.length === 0 || category.length > 255 || c.userId === "") {
        throw new Error("unsubscribe token: tenant, category and user id must be 1 to 255 bytes");
      }
      if (!UUID_HEX.test(c.notificationId.toLowerCase())) throw new Error("unsubscribe token: the notification id must be a UUID");
      const head = Buffer.alloc(4 + 16);
      head.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.floor(c.issuedAt.getTime() / 1000))), 0);
      Buffer.from(c.notificationId.replace(/-/g, ""), "hex").copy(head, 4);
      const plain = Buffer.concat([head, Buffer.of(tenant.length), tenant, Buffer.of(category.length), category, Buffer.from(c.userId, "utf8")]);
      const tag = tagOf(plain);
      return PREFIX + Buffer.concat([tag, ctr(tag, plain)]).toString("base64url");
    },

    open(token) {
      if (token.length > MAX_CHARS || !token.startsWith(PREFIX)) return undefined;
      const body = token.slice(PREFIX.length);
      if (!BODY.test(body)) return undefined;
      const raw = Buffer.from(body, "base64url");
      // Base64url that does not round-trip (stray trailing bits) is not a token we wrote.
      if (raw.length < TAG + FIXED + 3 || raw.toString("base64url") !== body) return undefined;
      const tag = raw.subarray(0, TAG);
      const plain = ctr(tag, raw.subarray(TAG));
      if (!timingSafeEqual(tag, tagOf(plain))) return undefined;
      // Authentic from here on: the layout is ours, but it is still read defensively.
      return parse(plain);
    },
  };
}

function parse(plain: Buffer): UnsubscribeClaims | undefined {
  try {
    const issued = plain.readUInt32BE(0);
    const hex = plain.subarray(4, 20).toString("hex");
    const notificationId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    let at = 20;
    const field = () => {
      const len = plain.readUInt8(at);
      const bytes = plain.subarray(at + 1, at + 1 + len);
      if (len === 0 || bytes.length !== len) throw new RangeError("short field");
      at += 1 + len;
      return utf8.decode(bytes);
    };
    const tenant = field();
    const category = field();
    const userId = utf8.decode(plain.subarray(at));
    if (userId === "") return undefined;
    return { tenant, userId, category, notificationId, issuedAt: new Date(issued * 1000) };
  } catch {
    return undefined;
  }
}
