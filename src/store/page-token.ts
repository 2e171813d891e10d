import { InvalidInputError } from "../errors.js";

// Page tokens for every List RPC: opaque to clients, base64url of a versioned
// JSON object whose fields are all strings (an int64 travels as decimal text,
// exact). A token comes back from the client, so it is untrusted input: decode
// checks its length, its version, that it holds exactly the cursor's fields,
// and each field's rule, numeric ranges included, so a forged token is
// INVALID_ARGUMENT here and never an out-of-range parameter in PostgreSQL.

/** A page token this server did not issue (or issued under another version). */
export class InvalidPageTokenError extends InvalidInputError {
  override name = "InvalidPageTokenError";
  constructor() {
    // The edge maps InvalidInputError to INVALID_ARGUMENT with this message, for every List RPC.
    super("page_token: must be a next_page_token from a previous response");
  }
}

/** Whether a decoded field's text is acceptable. */
export type FieldRule = (value: string) => boolean;

export interface PageTokenCodec<K extends string> {
  encode(cursor: Readonly<Record<K, string>>): string;
  /** The cursor in `token`; undefined for "" (the first page). Throws InvalidPageTokenError for anything else. */
  decode(token: string): Record<K, string> | undefined;
}

/** Bumped when the cursor's form changes, so an old token is refused instead of misread. */
const version = 1;
/**
 * Above any cursor Herald issues (the longest: a 4,096-character device token in a suppression's
 * cursor, about 5,500 characters once JSON and base64url); bounds the work spent on junk.
 */
const maxTokenChars = 8192;
const base64url = /^[A-Za-z0-9_-]+$/;

export function pageTokenCodec<K extends string>(fields: Readonly<Record<K, FieldRule>>): PageTokenCodec<K> {
  const names = Object.keys(fields) as K[];
  return {
    encode(cursor) {
      const body: Record<string, unknown> = { v: version };
      for (const name of names) body[name] = cursor[name];
      return Buffer.from(JSON.stringify(body)).toString("base64url");
    },
    decode(token) {
      if (token === "") return undefined;
      if (token.length > maxTokenChars || !base64url.test(token)) throw new InvalidPageTokenError();
      let body: unknown;
      try {
        body = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
      } catch {
        throw new InvalidPageTokenError();
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw new InvalidPageTokenError();
      const record = body as Record<string, unknown>;
      if (record.v !== version || Object.keys(record).length !== names.length + 1) throw new InvalidPageTokenError();
      const cursor = {} as Record<K, string>;
      for (const name of names) {
        const value = record[name];
        if (typeof value !== "string" || !fields[name](value)) throw new InvalidPageTokenError();
        cursor[name] = value;
      }
      return cursor;
    },
  };
}

/** A decimal integer in [min, max], written as the server writes it (no sign on 0, no leading zeros). */
export function integerField(min: bigint, max: bigint): FieldRule {
  return (value) => {
    if (!/^(?:0|-?[1-9]\d{0,18})$/.test(value)) return false;
    const n = BigInt(value);
    return n >= min && n <= max;
  };
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Non-empty text of at most `maxChars` UTF-16 units that PostgreSQL can take (no NUL, no lone surrogate). */
export function textField(maxChars: number): FieldRule {
  return (value) => value !== "" && value.length <= maxChars && !value.includes("\u0000") && !loneSurrogate.test(value);
}
