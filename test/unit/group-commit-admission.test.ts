import { describe, expect, it } from "vitest";
import { AbandonedError, createGroupCommit, type GroupCommitOptions } from "../../src/store/group-commit.js";

// Admission in the group commit: the bounded queue and dropping items whose caller gave up.
// The flush is held by a gate the test opens, so "waiting" is a state, not a race.

interface Item {
  n: number;
  gone?: boolean;
  /** The caller's time left, ms. */
  left?: number;
}

function gated(opts: Partial<GroupCommitOptions<Item, number>> = {}) {
  const flushed: number[][] = [];
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const shedding: Array<[boolean, number]> = [];
  const gc = createGroupCommit<Item, number>({
    maxBatch: 2,
    maxDelayMs: 1,
    maxQueued: 3,
    async flush(items) {
      flushed.push(items.map((i) => i.n));
      await gate;
      return items.map((i) => ({ status: "fulfilled", value: i.n }));
    },
    closedError: () => new Error("closed"),
    overloadedError: (ms) => Object.assign(new Error("full"), { retryAfterMs: ms }),
    abandoned: (i) => i.gone === true,
    timeLeftMs: (i) => i.left,
    onShedding: (active, shed) => void shedding.push([active, shed]),
    ...opts,
  });
  return { gc, flushed, open, shedding };
}

type Settled = { ok?: unknown; err?: Error & { retryAfterMs?: number } };
const settle = (p: Promise<unknown>): Promise<Settled> => p.then((ok) => ({ ok }), (e: unknown) => ({ err: e as Settled["err"] }));
const tick = () => new Promise((r) => setTimeout(r, 5));

describe("group commit admission", () => {
  it("refuses at once beyond maxQueued waiting items, with a retry hint, and says so once per episode", async () => {
    const { gc, flushed, open, shedding } = gated();
    const running = [gc.submit({ n: 1 }), gc.submit({ n: 2 })]; // a full batch: flushing, held by the gate
    const waiting = [3, 4, 5].map((n) => gc.submit({ n }));
    const refused = await Promise.all([settle(gc.submit({ n: 6 })), settle(gc.submit({ n: 7 }))]);
    expect(refused.map((r) => r.err?.message)).toEqual(["full", "full"]);
    expect(refused[0].err!.retryAfterMs).toBeGreaterThan(0);
    expect(shedding).toEqual([[true, 0]]);
    expect(flushed).toEqual([[1, 2]]);
    open();
    expect(await Promise.all([...running, ...waiting])).toEqual([1, 2, 3, 4, 5]);
    expect(flushed).toEqual([[1, 2], [3, 4], [5]]);
    expect(shedding).toEqual([[true, 0], [false, 2]]);
  });

  it("drops an item whose caller gave up while it waited, and never flushes it", async () => {
    const { gc, flushed, open } = gated({ maxQueued: 10 });
    const running = [gc.submit({ n: 1 }), gc.submit({ n: 2 })];
    const leaving: Item = { n: 3 };
    const left = settle(gc.submit(leaving));
    const staying = gc.submit({ n: 4 });
    await tick();
    leaving.gone = true;
    open();
    expect((await left).err).toBeInstanceOf(AbandonedError);
    expect(await Promise.all([...running, staying])).toEqual([1, 2, 4]);
    expect(flushed.flat()).not.toContain(3);
  });

  it("refuses an item already given up at submit, and frees a full queue of given-up items for new ones", async () => {
    const { gc, flushed, open } = gated();
    expect((await settle(gc.submit({ n: 0, gone: true }))).err).toBeInstanceOf(AbandonedError);
    const running = [gc.submit({ n: 1 }), gc.submit({ n: 2 })];
    const leaving = [3, 4, 5].map((n): Item => ({ n }));
    const left = leaving.map((i) => settle(gc.submit(i)));
    for (const i of leaving) i.gone = true;
    const admitted = gc.submit({ n: 6 }); // the queue looked full: a sweep makes room
    for (const r of await Promise.all(left)) expect(r.err).toBeInstanceOf(AbandonedError);
    open();
    expect(await Promise.all([...running, admitted])).toEqual([1, 2, 6]);
    expect(flushed).toEqual([[1, 2], [6]]);
  });

  it("refuses at once a call whose time left is shorter than the queue's expected wait", async () => {
    const { gc, flushed, open } = gated({ maxDelayMs: 50 }); // no flush has run: the wait is guessed as 50 ms
    const refused = await settle(gc.submit({ n: 1, left: 5 }));
    expect(refused.err?.message).toBe("full");
    const admitted = [gc.submit({ n: 2, left: 60_000 }), gc.submit({ n: 3 })];
    open();
    expect(await Promise.all(admitted)).toEqual([2, 3]);
    expect(flushed).toEqual([[2, 3]]);
  });
});
