import { describe, expect, it } from "vitest";
import { createSlots, SlotWaitAbortedError } from "../../src/workers/slots.js";

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("slots", () => {
  it("hands freed slots to waiters first come, first served, and counts a double release once", async () => {
    const slots = createSlots(1);
    const first = await slots.acquire();
    const order: string[] = [];
    const b = slots.acquire().then((release) => (order.push("b"), release));
    const c = slots.acquire().then((release) => (order.push("c"), release));
    first();
    first(); // a second call must not free a second slot
    const releaseB = await b;
    await tick();
    expect(order).toEqual(["b"]);
    expect(slots.inUse).toBe(1);
    releaseB();
    (await c)();
    expect(order).toEqual(["b", "c"]);
    expect(slots.inUse).toBe(0);
  });

  it("serves waits that go ahead before the others, each kind first come, first served", async () => {
    const slots = createSlots(1);
    const held = await slots.acquire();
    const order: string[] = [];
    // Each frees its slot as soon as it gets it: the order of grants is the order of service.
    const waits = (
      [
        ["n1", false],
        ["h1", true],
        ["n2", false],
        ["h2", true],
      ] as const
    ).map(([name, ahead]) =>
      slots.acquire(undefined, { ahead }).then((release) => {
        order.push(name);
        release();
      }),
    );
    held();
    await Promise.all(waits);
    expect(order).toEqual(["h1", "h2", "n1", "n2"]);
  });

  it("an aborted wait that went ahead leaves its place to the next one", async () => {
    const slots = createSlots(1);
    const held = await slots.acquire();
    const abort = new AbortController();
    const gaveUp = slots.acquire(abort.signal, { ahead: true });
    const plain = slots.acquire();
    abort.abort();
    await expect(gaveUp).rejects.toBeInstanceOf(SlotWaitAbortedError);
    held();
    (await plain)();
    expect(slots.inUse).toBe(0);
  });

  it("an aborted wait rejects, takes no slot, and leaves its place to the next waiter", async () => {
    const slots = createSlots(1);
    const held = await slots.acquire();
    const abort = new AbortController();
    const gaveUp = slots.acquire(abort.signal);
    const next = slots.acquire();
    abort.abort();
    await expect(gaveUp).rejects.toBeInstanceOf(SlotWaitAbortedError);
    held();
    const release = await next;
    expect(slots.inUse).toBe(1);
    release();
    expect(slots.inUse).toBe(0);
  });

  it("rejects at once when the signal is already aborted, even with a slot free", async () => {
    const slots = createSlots(2);
    await expect(slots.acquire(AbortSignal.abort())).rejects.toBeInstanceOf(SlotWaitAbortedError);
    expect(slots.inUse).toBe(0);
  });

  it("does not hand a slot to a wait that was already granted when its signal aborts", async () => {
    const slots = createSlots(1);
    const abort = new AbortController();
    const release = await slots.acquire(abort.signal);
    abort.abort(); // after the grant: the holder keeps its slot until it releases it
    expect(slots.inUse).toBe(1);
    release();
    expect(slots.inUse).toBe(0);
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => createSlots(0)).toThrow(RangeError);
    expect(() => createSlots(1.5)).toThrow(RangeError);
  });
});

describe("fair slots", () => {
  /** Queues waits named `${share}${n}` in the order given; each frees its slot once granted. Returns the order of service. */
  async function served(slots: ReturnType<typeof createSlots>, waits: Array<[string, string]>): Promise<string[]> {
    const held = await slots.acquire();
    const order: string[] = [];
    const all = waits.map(([share, name]) =>
      slots.acquire(undefined, { share }).then((release) => {
        order.push(name);
        release();
      }),
    );
    held();
    await Promise.all(all);
    return order;
  }

  it("serves the tenants that wait round robin, each first come, first served", async () => {
    const waits: Array<[string, string]> = [
      ["a", "a1"], ["a", "a2"], ["a", "a3"], ["a", "a4"], ["b", "b1"], ["a", "a5"], ["b", "b2"], ["c", "c1"],
    ];
    expect(await served(createSlots(1, { fair: true }), waits)).toEqual(["a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"]);
    // Without `fair`: first come, first served, whoever asks.
    expect(await served(createSlots(1), waits)).toEqual(["a1", "a2", "a3", "a4", "b1", "a5", "b2", "c1"]);
  });

  it("still serves waits that go ahead first, and an aborted wait leaves its tenant's turn to the next", async () => {
    const slots = createSlots(1, { fair: true });
    const held = await slots.acquire();
    const order: string[] = [];
    const run = (name: string, opts: { ahead?: boolean; share?: string }, signal?: AbortSignal) =>
      slots.acquire(signal, opts).then(
        (release) => {
          order.push(name);
          release();
        },
        (err: unknown) => {
          expect(err).toBeInstanceOf(SlotWaitAbortedError);
          order.push(`${name} aborted`);
        },
      );
    const gone = new AbortController();
    const waits = [run("a1", { share: "a" }), run("b1", { share: "b" }, gone.signal), run("a2", { share: "a" }), run("h", { ahead: true, share: "b" })];
    gone.abort();
    held();
    await Promise.all(waits);
    expect(order).toEqual(["b1 aborted", "h", "a1", "a2"]);
    expect(slots.inUse).toBe(0);
  });
});
