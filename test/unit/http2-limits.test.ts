import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createResetWatch, RESET_BURST, RESET_REFILL_PER_SECOND } from "../../src/server/http2-limits.js";

function capture() {
  const lines: Array<{ level: number; msg: string; peer?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n")) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  return { lines, log: pino({ level: "info" }, sink) };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("reset watch", () => {
  it("warns once per connection when its resets cross Node's rapid-reset bucket, and never below it", async () => {
    const { lines, log } = capture();
    let now = 0;
    const watch = createResetWatch(log, "grpc", { now: () => now });
    for (let i = 0; i < RESET_BURST; i++) watch.reset("a:1");
    // Refilled at 33/s: a second later 33 more fit.
    now += 1000;
    for (let i = 0; i < RESET_REFILL_PER_SECOND; i++) watch.reset("a:1");
    for (let i = 0; i < 500; i++) watch.reset("b:2");
    await flush();
    expect(lines).toEqual([]);

    watch.reset("a:1");
    watch.reset("a:1");
    await flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, peer: "a:1" });
  });
});
