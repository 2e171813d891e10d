import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.js";
import { integerField, InvalidPageTokenError, pageTokenCodec, textField } from "../../src/store/page-token.js";

const codec = pageTokenCodec({ at: integerField(-1000n, 1000n), id: textField(8) });
const token = (body: unknown) => Buffer.from(JSON.stringify(body)).toString("base64url");
const refused = (t: string) => {
  try {
    codec.decode(t);
  } catch (err) {
    return err;
  }
  return undefined;
};

describe("page tokens", () => {
  it("round-trips a cursor; the empty token is the first page", () => {
    for (const cursor of [{ at: "0", id: "a" }, { at: "-1000", id: "abcdefgh" }, { at: "1000", id: "é\u{1F600}" }]) {
      expect(codec.decode(codec.encode(cursor))).toEqual(cursor);
    }
    expect(codec.decode("")).toBeUndefined();
  });

  it("carries the longest cursor Herald issues: a suppression's 4,096-character device token, a user id of 256 four-byte characters", () => {
    const long = pageTokenCodec({ address: textField(4096) });
    const cursor = { address: "t".repeat(4096) };
    expect(long.decode(long.encode(cursor))).toEqual(cursor);
    const user = pageTokenCodec({ userId: textField(512) });
    const wide = { userId: "\u{1F600}".repeat(256) };
    expect(user.decode(user.encode(wide))).toEqual(wide);
  });

  it("is an INVALID_ARGUMENT naming page_token when refused", () => {
    const err = refused("!");
    expect(err).toBeInstanceOf(InvalidPageTokenError);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toBe("page_token: must be a next_page_token from a previous response");
  });

  it("refuses another version, or none", () => {
    expect(refused(token({ v: 2, at: "1", id: "a" }))).toBeInstanceOf(InvalidPageTokenError);
    expect(refused(token({ at: "1", id: "a" }))).toBeInstanceOf(InvalidPageTokenError);
    expect(refused(token({ v: "1", at: "1", id: "a" }))).toBeInstanceOf(InvalidPageTokenError);
  });

  it("refuses garbage: not base64url, not JSON, not an object, too long, missing or extra fields", () => {
    for (const t of [
      "not a token",
      "%%%",
      Buffer.from("{").toString("base64url"),
      token(null),
      token([1, "a"]),
      token("x"),
      token({ v: 1, at: "1" }),
      token({ v: 1, at: "1", id: "a", extra: "b" }),
      token({ v: 1, at: 1, id: "a" }),
      "A".repeat(8193),
    ]) {
      expect(refused(t), t).toBeInstanceOf(InvalidPageTokenError);
    }
  });

  it("refuses numbers out of range or not written as the server writes them", () => {
    for (const at of ["1001", "-1001", "9223372036854775807", "99999999999999999999", "01", "-0", "+1", "1.5", "1e3", " 1", ""]) {
      expect(refused(token({ v: 1, at, id: "a" })), at).toBeInstanceOf(InvalidPageTokenError);
    }
  });

  it("refuses text PostgreSQL cannot take or longer than its bound", () => {
    for (const id of ["", "a\u0000b", "\uD800", "a\uDC00", "123456789"]) {
      expect(refused(token({ v: 1, at: "1", id })), JSON.stringify(id)).toBeInstanceOf(InvalidPageTokenError);
    }
  });
});
