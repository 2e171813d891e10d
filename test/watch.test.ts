import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../gen/herald/v1/notification_pb.js";
import { createCursorCodec } from "../src/domain/cursor.js";
import { RESUME_CURSOR_HEADER } from "../src/server/handlers/watch-status.js";
import { loadCursorKey } from "../src/store/cursor-key.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { FAST } from "./e2e/support.js";
import { waitFor } from "./support/wait.js";
import { allSent, createSms, expectCode, inSequenceOrder, instantProvider, keysOf, storedKeys, watch, type Watcher } from "./support/watch.js";

// WatchStatus end to end: real Kafka, PostgreSQL and Redis; a deployment of two API instances
// (A also runs the relay, scheduler and a worker; B is an API server only) sharing one
// database and one set of topics, so "another instance" is a real second consumer of
// herald.status with its own feed.

let a: TestHerald;
let b: TestHerald;
const providerA = instantProvider("a");

const user = () => `u-${randomBytes(6).toString("hex")}`;

beforeAll(async () => {
  a = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers: { sms: providerA }, env: { ...FAST } });
  b = await startTestHerald({ roles: ["server"], db: a.db, topicPrefix: a.topicPrefix, env: { ...FAST } });
});
afterAll(async () => {
  await b?.stop();
  await a?.stop();
});

describe("WatchStatus", () => {
  it("streams one notification from creation to SENT: exactly its statuses, in order", async () => {
    const recipient = user();
    const w = watch(a.client(), { selector: { case: "userId", value: recipient } });
    await w.until("caught up", opened);
    const id = await createSms(a.client(), recipient);
    await w.until("SENT", () => allSent(w, [id]));
    w.stop();
    const events = w.events();
    expect(events.map((e) => Status[e.status])).toEqual(["QUEUED", "SENDING", "SENT"]);
    expect(events.map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(new Set(events.map((e) => e.notificationId))).toEqual(new Set([id]));
    expect(keysOf(events).sort()).toEqual(await storedKeys(a.db.pool, [id]));
    // Every message carries a cursor.
    expect(w.messages.every((m) => m.cursor.length > 0)).toBe(true);
  });

  it("watches one notification by id with a snapshot first, then only newer events", async () => {
    const recipient = user();
    const id = await createSms(a.client(), recipient);
    const w = watch(b.client(), { selector: { case: "notificationId", value: id }, snapshot: true });
    await w.until("SENT", () => {
      const snap = w.messages[0]?.kind.case === "snapshot" ? w.messages[0].kind.value : undefined;
      return snap?.status === Status.SENT || allSent(w, [id]);
    });
    w.stop();
    const [first, ...rest] = w.messages;
    expect(first?.kind.case).toBe("snapshot");
    // Events after the snapshot continue its history: no sequence is sent twice.
    expect(inSequenceOrder(w.events())).toBe(true);
    expect(rest.every((m) => m.kind.case === "event" || m.kind.case === "heartbeat")).toBe(true);
  });

  it("resumes on ANOTHER instance after a disconnect: every event exactly once, in per-notification order", async () => {
    const recipient = user();
    const first = watch(a.client(), { selector: { case: "userId", value: recipient } });
    await first.until("caught up", opened);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await createSms(a.client(), recipient, `first ${i}`));
    await first.until("some events", (w) => w.events().length >= 4);
    first.stop();
    await first.ended;
    const cursor = first.lastCursor();
    // Events keep happening while no one watches.
    for (let i = 0; i < 10; i++) ids.push(await createSms(a.client(), recipient, `away ${i}`));
    await waitFor("the notifications made while away to be SENT", async () => (await storedKeys(a.db.pool, ids)).length >= 3 * ids.length);
    const second = watch(b.client(), { selector: { case: "userId", value: recipient }, after: cursor });
    for (let i = 0; i < 5; i++) ids.push(await createSms(a.client(), recipient, `back ${i}`));
    await second.until("every notification SENT", (w) => allSent(w, ids) || allSent({ ...w, events: () => [...first.events(), ...w.events()] }, ids));
    second.stop();
    const union = [...first.events(), ...second.events()];
    expect(keysOf(union).sort()).toEqual(await storedKeys(a.db.pool, ids));
    expect(new Set(keysOf(union)).size).toBe(union.length); // nothing twice
    expect(inSequenceOrder(union)).toBe(true);
  });

  it("a tenant-wide stream never carries another tenant's events", async () => {
    const shared = user(); // the same recipient id in both tenants
    const tenantWide = watch(a.client(KEY_A), {});
    const sameUser = watch(a.client(KEY_A), { selector: { case: "userId", value: shared } });
    await tenantWide.until("caught up", opened);
    await sameUser.until("caught up", opened);
    const theirs = await createSms(a.client(KEY_B), shared, "tenant b");
    const ours = await createSms(a.client(KEY_A), shared, "tenant a");
    await tenantWide.until("our SENT", (w) => allSent(w, [ours]));
    await sameUser.until("our SENT", (w) => allSent(w, [ours]));
    await waitFor("B's notification SENT", async () => (await storedKeys(a.db.pool, [theirs])).length >= 3);
    // Created after B's last event was stored, so its events come after all of B's in the feed:
    // a stream that has it has been offered every one of B's.
    const marker = await createSms(a.client(KEY_A), shared, "marker");
    for (const w of [tenantWide, sameUser]) await w.until("the marker", (x) => x.events().some((e) => e.notificationId === marker));
    tenantWide.stop();
    sameUser.stop();
    for (const w of [tenantWide, sameUser]) expect(w.events().some((e) => e.notificationId === theirs)).toBe(false);
    // Nor by id, nor by resuming from an old cursor (the PostgreSQL path).
    const byId = watch(a.client(KEY_A), { selector: { case: "notificationId", value: theirs } });
    expect(expectCode(await byId.ended, Code.NotFound).message).toContain("not found");
    const replay = watch(b.client(KEY_A), { after: tenantWide.messages[0]!.cursor, selector: { case: "userId", value: shared } });
    await replay.until("our SENT again", (w) => allSent(w, [ours]));
    replay.stop();
    expect(replay.events().some((e) => e.notificationId === theirs)).toBe(false);
  });

  it("rejects bad requests with INVALID_ARGUMENT naming the field and the rule", async () => {
    const cases: Array<[Parameters<typeof watch>[1], string]> = [
      [{ after: "not-a-cursor" }, "after: must be a cursor from a previous WatchStatusResponse"],
      [{ selector: { case: "notificationId", value: "nope" } }, "notification_id: must be a UUID"],
      [{ selector: { case: "userId", value: "" } }, "user_id: must not be empty"],
      [{ statuses: [Status.SENT, 99 as Status] }, "statuses[1]: must be a known status"],
      [{ channels: [0] }, "channels[0]: must be a known channel"],
      [{ snapshotSince: { seconds: 1n } }, "snapshot_since: is only allowed with snapshot"],
    ];
    for (const [req, message] of cases) {
      const err = expectCode(await watch(a.client(), req).ended, Code.InvalidArgument);
      expect(err.rawMessage).toContain(message);
    }
  });

  it("ends streams with UNAVAILABLE and a resume cursor on shutdown; a restarted instance resumes without loss", async () => {
    const c = await startTestHerald({ roles: ["server"], db: a.db, topicPrefix: a.topicPrefix, env: { ...FAST } });
    const recipient = user();
    const before = watch(c.client(), { selector: { case: "userId", value: recipient } });
    await before.until("caught up", opened);
    const ids = [await createSms(a.client(), recipient, "before")];
    await before.until("first SENT", (w) => allSent(w, ids));
    const stopping = c.stop();
    const err = expectCode(await before.ended, Code.Unavailable);
    await stopping;
    const cursor = err.metadata.get(RESUME_CURSOR_HEADER);
    // Sealed afresh each time: the trailer and the last message name the same position.
    const cursors = createCursorCodec(await loadCursorKey(a.db.pool));
    expect(cursors.decode("tenant-a", cursor!)).toBe(cursors.decode("tenant-a", before.lastCursor()));
    expect(cursors.decode("tenant-a", cursor!)).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) ids.push(await createSms(a.client(), recipient, `while down ${i}`));
    const restarted = await startTestHerald({ roles: ["server"], db: a.db, topicPrefix: a.topicPrefix, env: { ...FAST } });
    try {
      const after = watch(restarted.client(), { selector: { case: "userId", value: recipient }, after: cursor! });
      await after.until("all SENT", (w) => allSent({ ...w, events: () => [...before.events(), ...w.events()] }, ids));
      after.stop();
      const union = [...before.events(), ...after.events()];
      expect(keysOf(union).sort()).toEqual(await storedKeys(a.db.pool, ids));
      expect(new Set(keysOf(union)).size).toBe(union.length);
      expect(inSequenceOrder(union)).toBe(true);
    } finally {
      await restarted.stop();
    }
  });
});

/** The stream has sent its "caught up" heartbeat: it is subscribed. */
const opened = (w: Watcher) => w.messages.some((m) => m.kind.case === "heartbeat");
