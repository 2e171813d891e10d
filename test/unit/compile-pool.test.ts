import { afterAll, describe, expect, it } from "vitest";
import { OverloadedError } from "../../src/errors.js";
import { TemplateSyntaxError } from "../../src/templates/compile.js";
import { createCompilePool, TemplateTooCostlyError, type TemplateCompiler } from "../../src/templates/compile-pool.js";
import { waitFor } from "../support/wait.js";

// PutTemplate's compiler: worker threads (the build's compile-worker.js) under a deadline. The
// deadline here is tiny so that a costly but legal template (500 expressions, nested 31 deep:
// tens of milliseconds even on a fast machine) runs past it.

const pools: TemplateCompiler[] = [];
afterAll(async () => void (await Promise.all(pools.map((p) => p.close()))));
const pool = (opts: Parameters<typeof createCompilePool>[0]) => {
  const p = createCompilePool(opts);
  pools.push(p);
  return p;
};

const chain = "{{#if a}}".repeat(31) + "x" + "{{/if}}".repeat(31);
const costly = chain.repeat(8);

/**
 * Until a trivial compile makes its deadline: the thread is up (starting one takes longer than 5 ms).
 * A probe that misses a 5 ms deadline ends its thread too, so on a loaded machine (CI runs every
 * file at once) many probes can miss in a row: the wait is long and the probes spaced, to give a new
 * thread room to start between them.
 */
const warm = (p: TemplateCompiler) =>
  waitFor("a warm compile thread", () => p.analyze("{{name}}", "text").then((r) => r.length === 1, () => false), { timeoutMs: 120_000, everyMs: 100 });

describe("template compile pool", { timeout: 300_000 }, () => {
  it("answers required variables and syntax errors from its thread", async () => {
    const p = pool({});
    expect(await p.analyze("Hi {{name}} {{#if vip}}{{perk}}{{/if}}", "text")).toEqual(["name"]);
    await expect(p.analyze("{{#if x}}", "text")).rejects.toBeInstanceOf(TemplateSyntaxError);
  });

  it("keeps the event loop free while it compiles: a timer fires before the compile answers", async () => {
    const p = pool({});
    await warm(p);
    let fired = false;
    setTimeout(() => (fired = true), 1);
    // On this thread the compile would finish first: its answer is a microtask, the timer a macrotask.
    await p.analyze(costly, "text");
    expect(fired).toBe(true);
  });

  it("refuses a compile that runs past its deadline, ends that thread, and compiles again afterwards", async () => {
    const p = pool({ timeoutMs: 5 });
    await warm(p);
    const err = await p.analyze(costly, "text").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TemplateTooCostlyError);
    expect(err).toBeInstanceOf(TemplateSyntaxError);
    expect((err as Error).message).toBe("took longer than 5 ms to compile; simplify it (fewer or less nested expressions)");
    await warm(p);
  });

  it("refuses as overload, not as a bad template, what cannot even start", async () => {
    const p = pool({ timeoutMs: 60_000, maxQueue: 1 });
    await warm(p);
    const running = p.analyze(costly, "text");
    const queued = p.analyze(costly, "text");
    const refused = await p.analyze("{{a}}", "text").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OverloadedError);
    expect((refused as OverloadedError).retryAfterMs).toBe(60_000);
    expect(await running).toEqual([]);
    expect(await queued).toEqual([]);
  });
});
