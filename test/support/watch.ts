import { Code, ConnectError } from "@connectrpc/connect";
import type pg from "pg";
import { Channel, Status, type StatusEvent } from "../../gen/herald/v1/notification_pb.js";
import type { WatchStatusResponse } from "../../gen/herald/v1/notification_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchStatusRequestSchema } from "../../gen/herald/v1/notification_service_pb.js";
import type { HeraldClient } from "../../src/client/index.js";
import type { Provider } from "../../src/workers/providers/provider.js";

// Helpers for WatchStatus tests: a stream reader that keeps every message and its cursor,
// ends on a condition or an error, and can be stopped like a client going away.

export type WatchRequest = MessageInitShape<typeof WatchStatusRequestSchema>;

export interface Watcher {
  /** Every message received so far, in order. */
  readonly messages: WatchStatusResponse[];
  /** The status events received so far. */
  events(): StatusEvent[];
  /** The cursor of the last message received ("" before any). */
  lastCursor(): string;
  /** Resolves once `done(messages)` holds; rejects if the stream ends first or after timeoutMs. */
  until(what: string, done: (w: Watcher) => boolean, timeoutMs?: number): Promise<void>;
  /** Settles when the stream ends: undefined for a clean end, else the ConnectError. */
  readonly ended: Promise<ConnectError | undefined>;
  /** Cancels the call (the client goes away). */
  stop(): void;
}

export function watch(client: HeraldClient, req: WatchRequest): Watcher {
  const abort = new AbortController();
  const messages: WatchStatusResponse[] = [];
  const waiters = new Set<() => void>();
  let endedWith: ConnectError | undefined | null = null; // null: still running
  const ended = (async () => {
    try {
      for await (const m of client.watchStatus(req, { signal: abort.signal })) {
        messages.push(m);
        for (const w of waiters) w();
      }
      endedWith = undefined;
    } catch (err) {
      endedWith = ConnectError.from(err);
    }
    for (const w of waiters) w();
    return endedWith;
  })();
  const watcher: Watcher = {
    messages,
    events: () => messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : [])),
    lastCursor: () => messages.at(-1)?.cursor ?? "",
    ended,
    stop: () => abort.abort(),
    until(what, done, timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (done(watcher)) finish();
          else if (endedWith !== null) finish(new Error(`stream ended (${endedWith?.message ?? "cleanly"}) before ${what}`));
        };
        const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${messages.length} messages`)), timeoutMs);
        const finish = (err?: Error) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve();
        };
        waiters.add(check);
        check();
      });
    },
  };
  return watcher;
}

/** (notification id, sequence) of each event, for exactly-once comparisons. */
export const keysOf = (events: readonly StatusEvent[]): string[] => events.map((e) => `${e.notificationId}#${e.sequence}`);

/** Every status_events row of these notifications as (id#sequence), sorted. */
export async function storedKeys(pool: pg.Pool, ids: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ id: string; sequence: number }>(
    "SELECT notification_id AS id, sequence FROM status_events WHERE notification_id = ANY($1::uuid[])",
    [ids],
  );
  return rows.map((r) => `${r.id}#${r.sequence}`).sort();
}

/** Whether each notification's events arrive in increasing sequence order. */
export function inSequenceOrder(events: readonly StatusEvent[]): boolean {
  const last = new Map<string, number>();
  for (const e of events) {
    if ((last.get(e.notificationId) ?? 0) >= e.sequence) return false;
    last.set(e.notificationId, e.sequence);
  }
  return true;
}

/** Whether every one of `ids` has reached a terminal status in what the watcher got. */
export function allSent(w: Watcher, ids: readonly string[]): boolean {
  const sent = new Set(w.events().filter((e) => e.status === Status.SENT).map((e) => e.notificationId));
  return ids.every((id) => sent.has(id));
}

/** A provider that accepts everything at once, counting sends. */
export function instantProvider(name = "instant"): Provider & { sends: number } {
  const p = {
    name,
    sends: 0,
    async send(m: { notificationId: string }) {
      p.sends++;
      return { providerMessageId: `${name}-${m.notificationId}` };
    },
    close: async () => {},
  };
  return p;
}

/** An SMS Create for `userId`; returns the id. */
export async function createSms(client: HeraldClient, userId: string, text = "hello"): Promise<string> {
  const { notification } = await client.create({
    notification: {
      channel: Channel.SMS,
      recipient: { userId, address: { case: "phone", value: "+14155550100" } },
      body: { case: "content", value: { text } },
    },
  });
  if (!notification) throw new Error("Create returned no notification");
  return notification.id;
}

export function expectCode(err: ConnectError | undefined, code: Code): ConnectError {
  if (!err) throw new Error(`expected the stream to end with ${Code[code]}, it ended cleanly`);
  if (err.code !== code) throw new Error(`expected ${Code[code]}, got ${Code[err.code]}: ${err.message}`);
  return err;
}
