import { create } from "@bufbuild/protobuf";
import { Channel, Status, StatusEventSchema } from "../../gen/herald/v1/notification_pb.js";
import type { WatchSelection } from "../../src/domain/watch-request.js";
import type { FeedEvent } from "../../src/feed/feed-event.js";

// Status-feed events and selections for the feed's unit tests: small, readable, and each
// event's notification id tells which position it was made for.

export interface EventInit {
  tenant?: string;
  userId?: string;
  notificationId?: string;
  status?: Status;
  channel?: Channel;
  sequence?: number;
}

/** A UUID naming `n`, so a failing assertion shows which event it was. */
export const notificationId = (n: number): string => `00000000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`;

/** The event at `position`: tenant acme, user ada, EMAIL, SENT, notification notificationId(position) unless overridden. */
export function feedEvent(position: number, init: EventInit = {}): FeedEvent {
  return {
    position,
    tenant: init.tenant ?? "acme",
    event: create(StatusEventSchema, {
      notificationId: init.notificationId ?? notificationId(position),
      sequence: init.sequence ?? 1,
      status: init.status ?? Status.SENT,
      channel: init.channel ?? Channel.EMAIL,
      userId: init.userId ?? "ada",
      attempt: 1,
      detail: `event ${position}`,
    }),
  };
}

export function selection(over: Partial<WatchSelection> = {}): WatchSelection {
  return { tenant: "acme", statuses: new Set(), channels: new Set(), ...over };
}

export const positions = (events: readonly FeedEvent[] | undefined): number[] | undefined => events?.map((e) => e.position);
