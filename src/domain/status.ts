import { Status } from "../../gen/herald/v1/notification_pb.js";

// The one transition table of the lifecycle (see docs/architecture.md):
//
//   SCHEDULED ─► QUEUED ─► SENDING ─► SENT ─► DELIVERED (a receipt; a webhook's 2xx, stored with the SENT)
//                  ▲          │         │
//                  └─ RETRYING ◄┘         └─► FAILED (a receipt: undelivered, bounced)
//   SENDING ─► FAILED · SENDING ─► DEAD_LETTERED · RETRYING ─► DEAD_LETTERED
//   SCHEDULED / QUEUED / RETRYING ─► CANCELED
//   FAILED / DEAD_LETTERED ─► QUEUED (redrive, with a fresh attempt budget)
const transitions: ReadonlyMap<Status, ReadonlySet<Status>> = new Map([
  [Status.SCHEDULED, new Set([Status.QUEUED, Status.CANCELED])],
  [Status.QUEUED, new Set([Status.SENDING, Status.CANCELED])],
  [Status.SENDING, new Set([Status.SENT, Status.RETRYING, Status.FAILED, Status.DEAD_LETTERED])],
  [Status.SENT, new Set([Status.DELIVERED, Status.FAILED])],
  [Status.RETRYING, new Set([Status.QUEUED, Status.DEAD_LETTERED, Status.CANCELED])],
  [Status.FAILED, new Set([Status.QUEUED])],
  [Status.DEAD_LETTERED, new Set([Status.QUEUED])],
  [Status.DELIVERED, new Set<Status>()],
  [Status.CANCELED, new Set<Status>()],
]);

/** Whether `from → to` is a legal transition. */
export function canTransition(from: Status, to: Status): boolean {
  return transitions.get(from)?.has(to) ?? false;
}

/** The statuses from which `to` may be entered (for guarded UPDATE ... WHERE status = ANY(...)). */
export function sourcesOf(to: Status): Status[] {
  return [...transitions].filter(([, targets]) => targets.has(to)).map(([from]) => from);
}

/** Terminal statuses: nothing more happens without an operator (redrive) or a receipt (SENT). */
export const terminalStatuses: readonly Status[] = [Status.SENT, Status.DELIVERED, Status.FAILED, Status.DEAD_LETTERED, Status.CANCELED];

export function isTerminal(s: Status): boolean {
  return terminalStatuses.includes(s);
}

/** Statuses in which Cancel still stops delivery. */
export const cancelable: readonly Status[] = sourcesOf(Status.CANCELED);
