import { selects, type WatchSelection } from "../domain/watch-request.js";
import type { FeedEvent } from "./feed-event.js";
import type { Subscription } from "./subscription.js";

// Who wants which event. Subscribers are indexed by tenant, then by what they select, so an
// event costs work only for the subscribers that could want it: never a scan of every stream,
// and never a database query (the event carries all a selection looks at).

interface TenantIndex {
  all: Set<Entry>;
  byUser: Map<string, Set<Entry>>;
  byNotification: Map<string, Set<Entry>>;
}

interface Entry {
  selection: WatchSelection;
  subscription: Subscription;
}

export class SubscriberRegistry {
  private readonly tenants = new Map<string, TenantIndex>();
  private readonly entries = new Map<Subscription, Entry>();

  get size(): number {
    return this.entries.size;
  }

  add(selection: WatchSelection, subscription: Subscription): void {
    const entry = { selection, subscription };
    this.entries.set(subscription, entry);
    let index = this.tenants.get(selection.tenant);
    if (!index) this.tenants.set(selection.tenant, (index = { all: new Set(), byUser: new Map(), byNotification: new Map() }));
    bucket(index, selection).add(entry);
  }

  remove(subscription: Subscription): void {
    const entry = this.entries.get(subscription);
    if (!entry) return;
    this.entries.delete(subscription);
    const index = this.tenants.get(entry.selection.tenant);
    if (!index) return;
    const { notificationId, userId } = entry.selection;
    const set = bucket(index, entry.selection);
    set.delete(entry);
    if (set.size === 0) {
      if (notificationId !== undefined) index.byNotification.delete(notificationId);
      else if (userId !== undefined) index.byUser.delete(userId);
    }
    if (index.all.size === 0 && index.byUser.size === 0 && index.byNotification.size === 0) this.tenants.delete(entry.selection.tenant);
  }

  /** Hands the event to every subscription that selects it. */
  publish(feedEvent: FeedEvent): void {
    const index = this.tenants.get(feedEvent.tenant);
    if (!index) return;
    const e = feedEvent.event;
    const deliver = (set: Set<Entry> | undefined) => {
      if (!set) return;
      // A push may overflow and remove its own entry; Set iteration allows that.
      for (const entry of set) if (selects(entry.selection, e)) entry.subscription.push(feedEvent);
    };
    deliver(index.all);
    deliver(index.byUser.get(e.userId));
    deliver(index.byNotification.get(e.notificationId));
  }

  /** Ends every subscription (each removes itself). */
  closeAll(): void {
    for (const subscription of [...this.entries.keys()]) subscription.close();
  }

  /** The largest queue of any subscriber (for stats and the memory bound's tests). */
  maxQueued(): number {
    let max = 0;
    for (const s of this.entries.keys()) max = Math.max(max, s.queued);
    return max;
  }
}

/** The set a selection's entries live in (made on first use). */
function bucket(index: TenantIndex, selection: WatchSelection): Set<Entry> {
  if (selection.notificationId !== undefined) {
    let set = index.byNotification.get(selection.notificationId);
    if (!set) index.byNotification.set(selection.notificationId, (set = new Set()));
    return set;
  }
  if (selection.userId !== undefined) {
    let set = index.byUser.get(selection.userId);
    if (!set) index.byUser.set(selection.userId, (set = new Set()));
    return set;
  }
  return index.all;
}
