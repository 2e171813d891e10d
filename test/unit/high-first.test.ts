import { describe, expect, it } from "vitest";
import { createHighFirst } from "../../src/workers/high-first.js";

const never = new AbortController().signal;

describe("high first", () => {
  it("lets a normal record start at once when no high-priority one runs", async () => {
    const gate = createHighFirst({ maxYieldMs: 60_000 });
    await gate.yieldTo(never); // would hang the test for a minute if it waited
  });

  it("holds a normal record back until the last high-priority one is done", async () => {
    const gate = createHighFirst({ maxYieldMs: 60_000 });
    const first = gate.enter();
    const second = gate.enter();
    let started = false;
    const waiting = gate.yieldTo(never).then(() => (started = true));
    first();
    first(); // a second call changes nothing
    await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    expect(started).toBe(false);
    second();
    await waiting;
    expect(started).toBe(true);
  });

  it("holds it back no longer than maxYieldMs, so high priority never stops the rest", async () => {
    const gate = createHighFirst({ maxYieldMs: 20 });
    gate.enter(); // never leaves
    await gate.yieldTo(never);
    await gate.yieldTo(never);
  });

  it("ends the wait when the worker stops", async () => {
    const gate = createHighFirst({ maxYieldMs: 60_000 });
    gate.enter();
    const stop = new AbortController();
    const waiting = gate.yieldTo(stop.signal);
    stop.abort();
    await waiting;
  });

  it("with maxYieldMs 0 never waits", async () => {
    const gate = createHighFirst({ maxYieldMs: 0 });
    gate.enter();
    await gate.yieldTo(never);
  });
});
