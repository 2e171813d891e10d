import { createRequire } from "node:module";

// kafkajs 2.2.4 (its last release) spins on every broker connection it has ever had an answer
// on: RequestQueue.checkPendingRequests always ends by scheduling itself again, and with no
// throttle in effect the delay it computes is negative, i.e. 1 ms. So an idle process wakes a
// thousand times a second for nothing (tulios/kafkajs#1556, #1704; the fix below is the one
// proposed in #1667 and #1768, never released). A check is needed only while requests wait:
// either throttled (checked when the throttle ends) or beyond the in-flight limit (checked
// when an in-flight one is answered, which calls checkPendingRequests itself). With nothing
// pending and no throttle, there is nothing to check for, so no timer is set.

interface RequestQueueShape {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs' own retry interval for requests held back by the in-flight limit. */
const CHECK_PENDING_REQUESTS_INTERVAL = 10;

const require = createRequire(import.meta.url);
let applied = false;

interface RequestQueueClass {
  prototype: RequestQueueShape;
  new (...args: never[]): RequestQueueShape;
}

/** The kafkajs class patched, for a test to drive directly. */
export function requestQueueClass(): RequestQueueClass {
  return require("kafkajs/src/network/requestQueue/index.js") as RequestQueueClass;
}

/**
 * Replaces RequestQueue.scheduleCheckPendingRequests with the fixed one. Only for the version
 * that has the bug: another one is left as it is (its code may differ). Idempotent.
 */
export function fixIdleRequestQueueLoop(): void {
  if (applied) return;
  applied = true;
  const { version } = require("kafkajs/package.json") as { version: string };
  if (version !== "2.2.4") return;
  requestQueueClass().prototype.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueueShape) {
    if (this.throttleCheckTimeoutId) return;
    const throttledFor = this.throttledUntil - Date.now();
    if (this.pending.length === 0 && throttledFor <= 0) return;
    const delay = throttledFor > 0 ? throttledFor : CHECK_PENDING_REQUESTS_INTERVAL;
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, delay);
  };
}
