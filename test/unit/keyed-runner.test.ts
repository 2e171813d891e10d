import { describe, expect, it } from "vitest";
import { createWatermark, runKeyed } from "../../src/workers/keyed-runner.js";
import { createSlots } from "../../src/workers/slots.js";

interface Item {
  offset: string;
  key: string;
}

const items = (keys: string[], first = 0): Item[] => keys.map((key, i) => ({ offset: String(first + i), key }));

/** A promise resolved from outside, to decide exactly when each handler finishes. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("runKeyed", () => {
  it("keeps each key's items in order while different keys run concurrently, within the limit", async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `user-${i % 4}`);
    const started: Item[] = [];
    const inFlight = new Set<string>();
    let maxInFlight = 0;
    let maxPerKey = 0;
    const result = await runKeyed(items(keys), createSlots(3), {
      keyOf: (m) => m.key,
      canStart: () => true,
      async handle(m) {
        started.push(m);
        inFlight.add(m.offset);
        maxInFlight = Math.max(maxInFlight, inFlight.size);
        maxPerKey = Math.max(maxPerKey, [...inFlight].filter((o) => keys[Number(o)] === m.key).length);
        // Uneven durations, so keys overtake each other.
        await new Promise((r) => setTimeout(r, (Number(m.offset) * 7) % 5));
        inFlight.delete(m.offset);
      },
    });
    expect(result).toEqual({ finished: 60, unfinished: 0 });
    expect(maxInFlight).toBe(3);
    expect(maxPerKey).toBe(1);
    for (let k = 0; k < 4; k++) {
      const mine = started.filter((m) => m.key === `user-${k}`).map((m) => Number(m.offset));
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
      expect(mine).toHaveLength(15);
    }
    // Concurrency across keys really happened: items started out of offset order.
    expect(started.map((m) => Number(m.offset))).not.toEqual([...Array(60).keys()]);
  });

  it("shares one limit across batches run at once", async () => {
    const slots = createSlots(2);
    let inFlight = 0;
    let max = 0;
    const handle = async () => {
      max = Math.max(max, ++inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
    };
    const opts = { keyOf: (m: Item) => m.key, canStart: () => true, handle };
    await Promise.all([runKeyed(items(["a", "b", "c"]), slots, opts), runKeyed(items(["d", "e", "f"]), slots, opts)]);
    expect(max).toBe(2);
    expect(slots.inUse).toBe(0);
  });

  it("stops a key's lane at a failure, so nothing of that key overtakes it; other keys go on", async () => {
    const done: string[] = [];
    const result = await runKeyed(items(["a", "b", "a", "b", "a"]), createSlots(4), {
      keyOf: (m) => m.key,
      canStart: () => true,
      async handle(m) {
        if (m.offset === "2") throw new Error("not finished");
        done.push(m.offset);
      },
      onFinished: () => {},
    });
    expect(done.sort()).toEqual(["0", "1", "3"]);
    expect(result).toEqual({ finished: 3, unfinished: 2 });
  });

  it("starts nothing once canStart turns false, and lets what runs finish", async () => {
    let open = true;
    const gates = new Map<string, ReturnType<typeof gate>>();
    const started: string[] = [];
    const running = runKeyed(items(["a", "b", "a", "c"]), createSlots(2), {
      keyOf: (m) => m.key,
      canStart: () => open,
      handle(m) {
        started.push(m.offset);
        const g = gate();
        gates.set(m.offset, g);
        return g.promise;
      },
    });
    await tick();
    expect(started).toEqual(["0", "1"]);
    open = false;
    gates.get("0")!.open();
    gates.get("1")!.open();
    expect(await running).toEqual({ finished: 2, unfinished: 2 });
    expect(started).toEqual(["0", "1"]);
  });
});

describe("watermark", () => {
  it("is the lowest unfinished offset, whatever order offsets finish in", () => {
    const w = createWatermark(["10", "11", "12", "13"]);
    expect(w.next()).toBeUndefined();
    w.finish("12");
    w.finish("11");
    expect(w.next()).toBeUndefined(); // 10 is not finished: nothing may be committed
    w.finish("10");
    expect(w.next()).toBe("13");
    w.finish("13");
    expect(w.next()).toBe("14");
  });

  it("never passes an unfinished offset while a runner finishes items out of order", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `k${i % 5}`);
    const batch = items(keys, 100);
    const w = createWatermark(batch.map((m) => m.offset));
    const finished = new Set<number>();
    const gates = batch.map(() => gate());
    const seen: string[] = [];
    const running = runKeyed(batch, createSlots(4), {
      keyOf: (m) => m.key,
      canStart: () => true,
      handle: (m) => gates[Number(m.offset) - 100]!.promise,
      onFinished(m) {
        finished.add(Number(m.offset));
        w.finish(m.offset);
        const next = w.next();
        if (next === undefined) return;
        seen.push(next);
        // Everything below the watermark is finished; the watermark itself is not.
        for (let o = 100; o < Number(next); o++) expect(finished.has(o)).toBe(true);
        if (Number(next) < 140) expect(finished.has(Number(next))).toBe(false);
      },
    });
    // Release in a scrambled order: later offsets often finish first.
    const order = [...batch.keys()].sort((a, b) => ((a * 17) % 40) - ((b * 17) % 40));
    for (const i of order) {
      gates[i]!.open();
      await tick();
    }
    await running;
    expect(w.next()).toBe("140");
    // It only ever moved forward.
    expect(seen.map(Number)).toEqual([...seen.map(Number)].sort((a, b) => a - b));
  });

  it("commits past the last record even when offsets have gaps", () => {
    const w = createWatermark(["5", "9"]);
    w.finish("5");
    expect(w.next()).toBe("9");
    w.finish("9");
    expect(w.next()).toBe("10");
    expect(() => w.finish("6")).toThrow("offset 6 is not part of this batch");
  });
});
