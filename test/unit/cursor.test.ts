import { describe, expect, it } from "vitest";
import { createCursorCodec } from "../../src/domain/cursor.js";

const codec = createCursorCodec(Buffer.from("a key for tests"));

describe("cursors", () => {
  it("round-trip every position for the tenant they were given to", () => {
    for (const p of [0, 1, 35, 36, 1_000_000, 2 ** 40, Number.MAX_SAFE_INTEGER]) expect(codec.decode("acme", codec.encode("acme", p))).toBe(p);
  });

  it("reveal nothing: h2. and 48 url-safe characters whatever the position, and never the same twice", () => {
    const small = codec.encode("acme", 1);
    const large = codec.encode("acme", 9_000_000_000);
    for (const c of [small, large]) expect(c).toMatch(/^h2\.[A-Za-z0-9_-]{48}$/);
    expect(codec.encode("acme", 1)).not.toBe(small);
    // No numeral of the position shows, in any base a client might try.
    expect(large).not.toContain((9_000_000_000).toString(36));
  });

  it("work only for their tenant and their key", () => {
    const c = codec.encode("acme", 42);
    expect(codec.decode("globex", c)).toBeUndefined();
    expect(createCursorCodec(Buffer.from("another deployment")).decode("acme", c)).toBeUndefined();
  });

  it("refuse any altered or malformed cursor", () => {
    const c = codec.encode("acme", 42);
    const flipped = c.slice(0, 10) + (c[10] === "A" ? "B" : "A") + c.slice(11);
    for (const bad of [flipped, c.slice(0, -1), `${c}A`, c.replace("h2.", "h3."), "", "h2.", "h2.!!!", ` ${c}`, c.toUpperCase()]) {
      expect(codec.decode("acme", bad), bad).toBeUndefined();
    }
  });

  it("still read h1. cursors from before (the position in base 36), for any tenant, strictly", () => {
    expect(codec.decode("acme", "h1.0")).toBe(0);
    expect(codec.decode("globex", "h1.z")).toBe(35);
    expect(codec.decode("acme", "h1.2gosa7pa2gv")).toBe(Number.MAX_SAFE_INTEGER);
    for (const c of ["h1", "h1.", "H1.1", "h1.-1", "h1.Z", "h1.1 ", "h1.0.5", "h1.zzzzzzzzzzz", "h1.2gosa7pa2gw"]) {
      expect(codec.decode("acme", c), c).toBeUndefined();
    }
  });
});
