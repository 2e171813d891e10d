import { Code, ConnectError } from "@connectrpc/connect";
import type { Channel, Notification } from "../../../gen/herald/v1/notification_pb.js";
import type { AcceptOutcome } from "../../store/accept.js";
import type { AcceptInput } from "../../store/accept-statement.js";
import type { NotificationStore } from "../../store/notifications.js";
import { type Clock } from "../../clock.js";

/** What Create and Schedule need from the process. */
export interface AcceptDeps {
  store: Pick<NotificationStore, "accept">;
  clock: Clock;
  /** New notification ids (UUIDv7: time-ordered). */
  newId: () => string;
  /** Delivery attempts in all for a channel, stored with each notification. */
  maxAttempts: (channel: Channel) => number;
  /** How far ahead Schedule may go, in ms. */
  horizonMs: number;
}

/** Stores a validated notification and turns the store's outcome into the RPC's answer. */
export async function accept(deps: AcceptDeps, input: Omit<AcceptInput, "id" | "maxAttempts">): Promise<Notification> {
  const outcome: AcceptOutcome = await deps.store.accept({ ...input, id: deps.newId(), maxAttempts: deps.maxAttempts(input.spec.channel) });
  switch (outcome.kind) {
    case "created":
    case "duplicate":
      // A repeat of the same request returns the first result, whatever its status now.
      return outcome.notification;
    case "key_conflict":
      throw new ConnectError(
        "idempotency_key: already used for a different request; use a new key for a new notification",
        Code.AlreadyExists,
      );
  }
}
