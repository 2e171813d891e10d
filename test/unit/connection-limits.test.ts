import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import type { Logger } from "../../src/log.js";
import { createConnectionGate } from "../../src/server/connection-limits.js";
import { waitFor } from "../support/wait.js";

// The gate's bookkeeping without sockets: counts per address and in all, given back on close,
// and two log lines per flood of refusals however long it lasts.

class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  destroy(): void {
    this.destroyed = true;
    this.emit("close");
  }
}

function setup(limits: { maxConnections: number; maxConnectionsPerAddress: number }) {
  const lines: Array<{ level: "warn" | "info"; obj: Record<string, unknown>; msg: string }> = [];
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => lines.push({ level: "warn", obj, msg }),
    info: (obj: Record<string, unknown>, msg: string) => lines.push({ level: "info", obj, msg }),
  } as unknown as Logger;
  const gate = createConnectionGate({ ...limits, log, quietMs: 20 });
  const connect = (address: string) => {
    const socket = new FakeSocket(address);
    return { socket, admitted: gate.admit(socket as unknown as Socket, "http") };
  };
  return { gate, lines, connect };
}

describe("connection gate", () => {
  it("refuses an address past its cap, and takes it again once one of its sockets closes", () => {
    const { gate, connect } = setup({ maxConnections: 100, maxConnectionsPerAddress: 2 });
    const [a, b] = [connect("10.0.0.1"), connect("10.0.0.1")];
    expect([a.admitted, b.admitted]).toEqual([true, true]);
    const refused = connect("10.0.0.1");
    expect(refused).toMatchObject({ admitted: false, socket: { destroyed: true } });
    expect(connect("10.0.0.2").admitted).toBe(true);
    a.socket.destroy();
    expect(connect("10.0.0.1").admitted).toBe(true);
    expect([gate.open(), gate.refused()]).toEqual([3, 1]);
  });

  it("refuses any address once the total is reached", () => {
    const { gate, connect } = setup({ maxConnections: 3, maxConnectionsPerAddress: 2 });
    const held = ["10.0.0.1", "10.0.0.1", "10.0.0.2"].map(connect);
    expect(held.map((c) => c.admitted)).toEqual([true, true, true]);
    expect(connect("10.0.0.3").admitted).toBe(false);
    held[2]!.socket.destroy();
    expect(connect("10.0.0.3").admitted).toBe(true);
    expect(gate.open()).toBe(3);
  });

  it("logs a warn when a flood starts and an info when it has been quiet, once each, then again for the next flood", async () => {
    const { lines, connect } = setup({ maxConnections: 2, maxConnectionsPerAddress: 1 });
    connect("10.0.0.1");
    for (let i = 0; i < 25; i++) connect("10.0.0.1");
    connect("10.0.0.2");
    for (let i = 0; i < 25; i++) connect("10.0.0.3");
    expect(lines).toEqual([expect.objectContaining({ level: "warn", obj: expect.objectContaining({ reason: "per-address", peer: "10.0.0.1", open: 1 }) as unknown })]);
    await waitFor("the all-clear", () => lines.length === 2);
    expect(lines[1]).toMatchObject({ level: "info", obj: { refused: 50, byReason: { "per-address": 25, total: 25 } } });
    connect("10.0.0.3");
    expect(lines.map((l) => l.level)).toEqual(["warn", "info", "warn"]);
  });
});
