import { describe, expect, it } from "vitest";
import { InvalidInputError, isRetriable, PermanentError, TransientError, UnavailableError } from "../../src/errors.js";

describe("error taxonomy", () => {
  it("each kind says whether retrying can help; others fall back to the caller's choice", () => {
    expect(isRetriable(new UnavailableError("database", "down"), false)).toBe(true);
    expect(isRetriable(new TransientError("429", { retryAfterMs: 5 }), false)).toBe(true);
    expect(isRetriable(new PermanentError("bad address"), true)).toBe(false);
    expect(isRetriable(new InvalidInputError("x: must not contain NUL"), true)).toBe(false);
    // kafkajs errors carry the flag themselves.
    expect(isRetriable(Object.assign(new Error("KafkaJSProtocolError"), { retriable: false }), true)).toBe(false);
    expect(isRetriable(new Error("a bug"), true)).toBe(true);
    expect(isRetriable(new Error("a bug"), false)).toBe(false);
    expect(isRetriable("a string", false)).toBe(false);
  });
});
