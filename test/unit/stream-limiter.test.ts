import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createStreamLimiter, type StreamLimiter } from "../../src/server/stream-limiter.js";

const perKeyMessage = (n: number) => `too many WatchStatus streams for this API key (limit ${n}); close one or retry later`;
const totalMessage = (n: number) => `this server has reached its limit of ${n} WatchStatus streams; retry later or on another instance`;

function expectExhausted(limiter: StreamLimiter, keyId: string, message: string): void {
  let caught: unknown;
  try {
    limiter.acquire(keyId);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ConnectError);
  expect({ code: (caught as ConnectError).code, message: (caught as ConnectError).rawMessage }).toEqual({
    code: Code.ResourceExhausted,
    message,
  });
}

describe("stream limiter", () => {
  it("caps streams per API key with an exact RESOURCE_EXHAUSTED message; other keys are unaffected", () => {
    const limiter = createStreamLimiter({ perKey: 2, total: 10 });
    limiter.acquire("k1");
    limiter.acquire("k1");
    expectExhausted(limiter, "k1", perKeyMessage(2));
    expect(limiter.open()).toBe(2);
    limiter.acquire("k2");
    limiter.acquire("k2");
    expect(limiter.open()).toBe(4);
  });

  it("caps streams per server across keys with its own message", () => {
    const limiter = createStreamLimiter({ perKey: 5, total: 3 });
    limiter.acquire("k1");
    limiter.acquire("k2");
    limiter.acquire("k3");
    expectExhausted(limiter, "k4", totalMessage(3));
    expectExhausted(limiter, "k1", totalMessage(3));
    expect(limiter.open()).toBe(3);
  });

  it("reports the per-key limit when both are reached", () => {
    const limiter = createStreamLimiter({ perKey: 2, total: 2 });
    limiter.acquire("k1");
    limiter.acquire("k1");
    expectExhausted(limiter, "k1", perKeyMessage(2));
    expectExhausted(limiter, "k2", totalMessage(2));
  });

  it("a refused acquire takes no slot", () => {
    const limiter = createStreamLimiter({ perKey: 1, total: 2 });
    const release = limiter.acquire("k1");
    expectExhausted(limiter, "k1", perKeyMessage(1));
    expectExhausted(limiter, "k1", perKeyMessage(1));
    expect(limiter.open()).toBe(1);
    release();
    expect(limiter.open()).toBe(0);
    limiter.acquire("k1");
    limiter.acquire("k2");
    expect(limiter.open()).toBe(2);
  });

  it("release gives the slot back to the key and the server, once however often it is called", () => {
    const limiter = createStreamLimiter({ perKey: 2, total: 3 });
    const a = limiter.acquire("k1");
    limiter.acquire("k1");
    limiter.acquire("k2");
    expect(limiter.open()).toBe(3);

    a();
    a();
    a();
    expect(limiter.open()).toBe(2);
    // A repeated release must not free a slot that another stream of the key holds.
    limiter.acquire("k1");
    expectExhausted(limiter, "k1", perKeyMessage(2));
    expectExhausted(limiter, "k3", totalMessage(3));
  });

  it("open() counts streams open now, back to 0 when all are released", () => {
    const limiter = createStreamLimiter({ perKey: 3, total: 10 });
    expect(limiter.open()).toBe(0);
    const releases = [limiter.acquire("a"), limiter.acquire("a"), limiter.acquire("b"), limiter.acquire("c")];
    expect(limiter.open()).toBe(4);
    for (const release of releases) release();
    expect(limiter.open()).toBe(0);
    // Every key starts afresh.
    for (let i = 0; i < 3; i++) limiter.acquire("a");
    expectExhausted(limiter, "a", perKeyMessage(3));
  });

  it("a limit of 0 refuses every stream", () => {
    expectExhausted(createStreamLimiter({ perKey: 0, total: 10 }), "k", perKeyMessage(0));
    expectExhausted(createStreamLimiter({ perKey: 10, total: 0 }), "k", totalMessage(0));
  });
});
