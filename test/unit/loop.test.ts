import { describe, expect, it, vi } from "vitest";
import { createOutageLog } from "../../src/loop/outage.js";
import { createWakeup, sleep } from "../../src/loop/sleep.js";
import type { Logger } from "../../src/log.js";

describe("sleep", () => {
  it("resolves true after the whole time, false at once when aborted", async () => {
    vi.useFakeTimers();
    try {
      const full = sleep(1000);
      await vi.advanceTimersByTimeAsync(1000);
      await expect(full).resolves.toBe(true);
      const stop = new AbortController();
      const cut = sleep(60_000, stop.signal);
      stop.abort();
      await expect(cut).resolves.toBe(false);
      await expect(sleep(60_000, stop.signal)).resolves.toBe(false);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("createWakeup", () => {
  it("wake() ends every current sleep; a wake with no sleeper is kept for the next one only", async () => {
    vi.useFakeTimers();
    try {
      const w = createWakeup();
      const a = w.sleep(60_000);
      const b = w.sleep(60_000);
      w.wake();
      await expect(Promise.all([a, b])).resolves.toEqual([false, false]);
      w.wake(); // nobody sleeping: latched
      await expect(w.sleep(60_000)).resolves.toBe(false);
      const c = w.sleep(500); // the latch was used up
      await vi.advanceTimersByTimeAsync(500);
      await expect(c).resolves.toBe(true);
      const stop = new AbortController();
      const d = w.sleep(60_000, stop.signal);
      stop.abort();
      await expect(d).resolves.toBe(false);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("createOutageLog", () => {
  it("logs once when an outage starts and once when it ends, with its length and failures", () => {
    const lines: { level: string; obj: unknown; msg: string }[] = [];
    const log = {
      warn: (obj: unknown, msg: string) => lines.push({ level: "warn", obj, msg }),
      info: (obj: unknown, msg: string) => lines.push({ level: "info", obj, msg }),
    } as unknown as Logger;
    let now = 1000;
    const outage = createOutageLog(log, { down: "kafka unavailable", up: "publishing again" }, { now: () => now });
    outage.succeeded();
    expect(lines).toEqual([]);
    const err = new Error("ECONNREFUSED");
    expect(outage.failed(err)).toBe(1);
    now = 1500;
    expect(outage.failed(new Error("again"))).toBe(2);
    expect(outage.failed(new Error("again"))).toBe(3);
    expect(outage.failures).toBe(3);
    now = 4000;
    outage.succeeded();
    outage.succeeded();
    expect(outage.failures).toBe(0);
    expect(lines).toEqual([
      { level: "warn", obj: { err }, msg: "kafka unavailable" },
      { level: "info", obj: { failures: 3, downMs: 3000 }, msg: "publishing again" },
    ]);
  });
});
