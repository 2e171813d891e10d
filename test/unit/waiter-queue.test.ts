import { describe, expect, it } from "vitest";
import { createWaiterQueue } from "../../src/workers/waiter-queue.js";

describe("waiter queue", () => {
  it("grants round robin between shares, first come, first served within each; waits without a share are one queue", async () => {
    const queue = createWaiterQueue(() => {});
    const signal = new AbortController().signal;
    const order: string[] = [];
    const waits = (
      [
        ["a1", "a"], ["a2", "a"], ["a3", "a"], ["b1", "b"], ["n1", undefined], ["b2", "b"], ["n2", undefined],
      ] as const
    ).map(([name, share]) => queue.push(signal, share).then(() => void order.push(name)));
    expect(queue.length).toBe(7);
    while (queue.grant()) await Promise.resolve();
    await Promise.all(waits);
    expect(order).toEqual(["a1", "b1", "n1", "a2", "b2", "n2", "a3"]);
    expect(queue.length).toBe(0);
  });

  it("an aborted signal takes its waiters out of every share and tells when none is left", async () => {
    let emptied = 0;
    const queue = createWaiterQueue(() => emptied++);
    const gone = new AbortController();
    const stays = new AbortController().signal;
    const aborted = [queue.push(gone.signal, "a"), queue.push(gone.signal, "b")].map((p) => p.catch((e: unknown) => e));
    const kept = queue.push(stays, "b");
    gone.abort(new Error("stopped"));
    expect((await Promise.all(aborted)).map((e) => (e as Error).message)).toEqual(["stopped", "stopped"]);
    expect(queue.length).toBe(1);
    expect(emptied).toBe(0);
    expect(queue.grant()).toBe(true);
    await kept;
    expect(queue.grant()).toBe(false);
  });
});
