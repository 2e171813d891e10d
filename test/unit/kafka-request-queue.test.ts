import { describe, expect, it } from "vitest";
import { fixIdleRequestQueueLoop, requestQueueClass } from "../../src/kafka/request-queue-fix.js";

// kafkajs' own RequestQueue (not a copy), as every broker connection uses it once
// fixIdleRequestQueueLoop ran: an answered request with nothing waiting sets no timer, where
// kafkajs 2.2.4 set a 1 ms one that set the next, forever.

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function queue(maxInFlightRequests = 1) {
  const RequestQueue = requestQueueClass() as unknown as new (opts: object) => {
    pending: unknown[];
    throttledUntil: number;
    throttleCheckTimeoutId: NodeJS.Timeout | null;
    checkPendingRequests(): void;
    destroy(): void;
  };
  return new RequestQueue({ maxInFlightRequests, requestTimeout: 1000, enforceRequestTimeout: false, clientId: "t", broker: "b:1", logger: silent });
}

describe("kafkajs request queue, fixed", () => {
  fixIdleRequestQueueLoop();

  it("sets no timer when nothing is pending and nothing throttles", () => {
    const q = queue();
    q.checkPendingRequests();
    expect(q.throttleCheckTimeoutId).toBeNull();
    q.destroy();
  });

  it("still checks again when the throttle ends, with nothing pending", () => {
    const q = queue();
    q.throttledUntil = Date.now() + 60_000;
    q.checkPendingRequests();
    expect(q.throttleCheckTimeoutId).not.toBeNull();
    q.destroy();
  });

  it("still checks again while requests wait", () => {
    const q = queue();
    q.throttledUntil = Date.now() + 60_000; // holds the request back, so it stays pending
    q.pending.push({ correlationId: 1 });
    q.checkPendingRequests();
    expect(q.pending).toHaveLength(1);
    expect(q.throttleCheckTimeoutId).not.toBeNull();
    q.destroy();
  });
});
