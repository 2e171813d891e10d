import { EventEmitter } from "node:events";
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { guardResets, RESET_BURST, RESET_HEADROOM, RESET_REFILL_PER_SECOND } from "../../src/server/http2-limits.js";
import { waitFor } from "../support/wait.js";

function capture() {
  const lines: Array<{ level: number; msg: string; peer?: string; resets?: number; lastStreamId?: number }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n")) if (l) lines.push(JSON.parse(l) as (typeof lines)[number]);
      done();
    },
  });
  return { lines, log: pino({ level: "info" }, sink) };
}

const flush = () => new Promise((r) => setImmediate(r));

/** A session as the guard sees it: streams it emits, and what the guard did to it. */
class FakeSession extends EventEmitter {
  goaways: Array<[number, number]> = [];
  closeCalls = 0;
  closed = false;
  destroyed = false;
  socket = { remoteAddress: "10.0.0.7", remotePort: 4711 };
  private nextId = 1;
  goaway(code: number, last: number) {
    this.goaways.push([code, last]);
  }
  close() {
    this.closeCalls++;
  }
  destroy() {
    this.destroyed = true;
  }
  /** A stream that opens and ends with `rstCode` (8: the client cancelled it; 0: answered). */
  stream(rstCode: number) {
    const s = Object.assign(new EventEmitter(), { id: this.nextId, rstCode });
    this.nextId += 2;
    this.emit("stream", s);
    s.emit("close");
  }
}

describe("reset guard", () => {
  it("closes a connection gracefully (GOAWAY NO_ERROR, last stream taken) before nghttp2's rapid-reset bucket runs out, and logs once", async () => {
    const { lines, log } = capture();
    let now = 0;
    const session = new FakeSession();
    guardResets(session, { log, listener: "grpc", clock: { now: () => now } });
    // Answered streams cost nothing; the bucket refills at 33/s.
    for (let i = 0; i < 5000; i++) session.stream(0);
    for (let i = 0; i < RESET_BURST - RESET_HEADROOM; i++) session.stream(8);
    now += 1000;
    for (let i = 0; i < RESET_REFILL_PER_SECOND; i++) session.stream(8);
    await flush();
    expect(session.goaways).toEqual([]);
    expect(lines).toEqual([]);

    // The next reset would leave less than the headroom: the connection closes at it, once.
    session.stream(8);
    session.stream(8);
    await flush();
    const last = 2 * (5000 + RESET_BURST - RESET_HEADROOM + RESET_REFILL_PER_SECOND + 1) - 1;
    expect(session.goaways).toEqual([[0, last]]);
    expect(session.closeCalls).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, peer: "10.0.0.7:4711", lastStreamId: last });
    expect(lines[0]!.resets).toBe(RESET_BURST - RESET_HEADROOM + RESET_REFILL_PER_SECOND + 1);
  });

  it("cuts the streams a closed connection still holds after the grace", async () => {
    const { log } = capture();
    const session = new FakeSession();
    guardResets(session, { log, listener: "http", graceMs: 10 });
    for (let i = 0; i <= RESET_BURST - RESET_HEADROOM; i++) session.stream(8);
    expect(session.goaways).toHaveLength(1);
    await waitFor("the held streams cut", () => session.destroyed);
    expect(session.destroyed).toBe(true);
  });
});
