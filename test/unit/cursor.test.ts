import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "../../src/domain/cursor.js";

describe("feed cursors", () => {
  it("encode as h1. and the position in lowercase base 36", () => {
    expect(encodeCursor(0)).toBe("h1.0");
    expect(encodeCursor(35)).toBe("h1.z");
    expect(encodeCursor(36)).toBe("h1.10");
    expect(encodeCursor(Number.MAX_SAFE_INTEGER)).toBe("h1.2gosa7pa2gv");
  });

  it("round-trip every position from 0 to Number.MAX_SAFE_INTEGER", () => {
    const positions = [0, 1, 35, 36, 1295, 1296, 1_000_000, 2 ** 32, 2 ** 52, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER];
    for (const p of positions) expect(decodeCursor(encodeCursor(p))).toBe(p);
  });

  it("reject other formats and garbage", () => {
    for (const c of ["", "h1", "h1.", "h2.1", "H1.1", "1", "x1.1", " h1.1", "h1.1 ", "h1.1\n", "h1. 1", "h1.1.2", "h1.+1", "h1.1_0"]) {
      expect(decodeCursor(c)).toBeUndefined();
    }
  });

  it("reject negative and fractional positions", () => {
    expect(encodeCursor(-1)).toBe("h1.-1");
    expect(decodeCursor(encodeCursor(-1))).toBeUndefined();
    expect(decodeCursor("h1.-0")).toBeUndefined();
    expect(decodeCursor("h1.0.5")).toBeUndefined();
  });

  it("reject uppercase bodies (base 36 here is lowercase only)", () => {
    expect(decodeCursor("h1.z")).toBe(35);
    expect(decodeCursor("h1.Z")).toBeUndefined();
    expect(decodeCursor("h1.2GOSA7PA2GV")).toBeUndefined();
  });

  it("reject bodies longer than 11 digits and values beyond Number.MAX_SAFE_INTEGER", () => {
    expect(decodeCursor("h1.zzzzzzzzzzz")).toBeUndefined(); // 11 digits, 36^11 - 1
    expect(decodeCursor("h1.2gosa7pa2gw")).toBeUndefined(); // MAX_SAFE_INTEGER + 1
    expect(decodeCursor("h1.100000000000")).toBeUndefined(); // 12 digits
    expect(decodeCursor(`h1.${"0".repeat(11)}1`)).toBeUndefined();
    expect(decodeCursor(`h1.${"1".repeat(1000)}`)).toBeUndefined();
  });
});
