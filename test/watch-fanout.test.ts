import { randomBytes } from "node:crypto";
import { Partitioners } from "kafkajs";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../gen/herald/v1/notification_pb.js";
import {
  WatchStatusRequestSchema,
  WatchStatusResponseSchema,
  type WatchStatusResponse,
} from "../gen/herald/v1/notification_service_pb.js";
import { createHeraldClient, type HeraldClient } from "../src/client/index.js";
import { RESUME_CURSOR_HEADER } from "../src/server/handlers/watch-status.js";
import { createCursorCodec } from "../src/domain/cursor.js";
import { loadCursorKey } from "../src/store/cursor-key.js";
import { FAST, waitForGroup } from "./e2e/support.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { allSent, createSms, inSequenceOrder, instantProvider, keysOf, storedKeys, watch, type Watcher } from "./support/watch.js";

// Fan-out at scale and across instances: API instances A and B, workers on A and on C (one
// consumer group, partitions split between them), subscribers on both API instances; then a
// thousand streams on one instance with a reader that stops reading.

const BUFFER = 1000;
let a: TestHerald;
let b: TestHerald;
let c: TestHerald;
const providerA = instantProvider("a");
const providerC = instantProvider("c");

/**
 * `count` user ids whose Dispatch keys (tenant-a/<user>) hash to every one of the topic's 3
 * partitions, `count / 3` each, as the producer's partitioner places them: so both workers,
 * whatever split of the partitions they got, have records to deliver (random ids all landed on one
 * worker's partitions in about 1 run in 130).
 */
function spreadUsers(prefix: string, count: number): string[] {
  const partitionOf = Partitioners.DefaultPartitioner();
  const partitionMetadata = [0, 1, 2].map((partitionId) => ({ partitionId, partitionErrorCode: 0, leader: 0, replicas: [0], isr: [0], offlineReplicas: [] }));
  const byPartition: string[][] = [[], [], []];
  for (let i = 0; byPartition.some((p) => p.length < count / 3); i++) {
    const user = `${prefix}-${i}`;
    const p = partitionOf({ topic: "t", partitionMetadata, message: { key: `tenant-a/${user}`, value: null } });
    if (byPartition[p]!.length < count / 3) byPartition[p]!.push(user);
  }
  return byPartition.flat();
}

const opened = (w: Watcher) => w.messages.some((m) => m.kind.case === "heartbeat");
const tag = () => randomBytes(5).toString("hex");

beforeAll(async () => {
  const env = { ...FAST, HERALD_WATCH_BUFFER: String(BUFFER) };
  a = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers: { sms: providerA }, env });
  b = await startTestHerald({ roles: ["server"], db: a.db, topicPrefix: a.topicPrefix, env });
  c = await startTestHerald({ roles: ["worker"], db: a.db, topicPrefix: a.topicPrefix, providers: { sms: providerC }, env });
  await waitForGroup(`${a.topicPrefix}herald-worker-sms`, 2);
}, 180_000);
afterAll(async () => {
  await c?.stop();
  await b?.stop();
  await a?.stop();
});

describe("WatchStatus fan-out", () => {
  it("two API instances, events from two workers: every subscriber gets every event of its selection", async () => {
    const run = tag();
    const users = spreadUsers(`fan-${run}`, 12);
    const watchers: Array<{ on: string; w: Watcher; user?: string; onlySent?: boolean }> = [
      { on: "A tenant", w: watch(a.client(), {}) },
      { on: "B tenant", w: watch(b.client(), {}) },
      { on: "A user 0", w: watch(a.client(), { selector: { case: "userId", value: users[0]! } }), user: users[0] },
      { on: "B user 1", w: watch(b.client(), { selector: { case: "userId", value: users[1]! } }), user: users[1] },
      { on: "B SENT only", w: watch(b.client(), { statuses: [Status.SENT] }), onlySent: true },
    ];
    for (const { w } of watchers) await w.until("caught up", opened);
    const sentBefore = { a: providerA.sends, c: providerC.sends };
    const ids: string[] = [];
    const userOf = new Map<string, string>();
    for (let round = 0; round < 4; round++) {
      for (const u of users) {
        const id = await createSms(a.client(), u, `round ${round}`);
        ids.push(id);
        userOf.set(id, u);
      }
    }
    const wanted = (user: string | undefined) => ids.filter((id) => user === undefined || userOf.get(id) === user);
    for (const { on, w, user } of watchers) await w.until(`${on}: all SENT`, (x) => allSent(x, wanted(user)), 60_000);
    for (const { w } of watchers) w.stop();
    // Both workers delivered some of them.
    expect(providerA.sends - sentBefore.a).toBeGreaterThan(0);
    expect(providerC.sends - sentBefore.c).toBeGreaterThan(0);
    for (const { on, w, user, onlySent } of watchers) {
      const mine = w.events().filter((e) => ids.includes(e.notificationId));
      expect(new Set(keysOf(mine)).size, on).toBe(mine.length);
      expect(inSequenceOrder(mine), on).toBe(true);
      if (onlySent) {
        expect(mine.every((e) => e.status === Status.SENT), on).toBe(true);
        expect(mine.length, on).toBe(ids.length);
      } else {
        expect(keysOf(mine).sort(), on).toEqual(await storedKeys(a.db.pool, wanted(user)));
      }
    }
  });

  it("1,000 streams on one instance get their events while a reader that stops reading is cut off RESOURCE_EXHAUSTED, with memory bounded", async () => {
    const run = tag();
    const STREAMS = 1000;
    // Four connections, 250 streams each, one recipient per stream.
    const clients: HeraldClient[] = Array.from({ length: 4 }, () => createHeraldClient({ address: a.grpcAddress, apiKey: KEY_A }));
    try {
      const users = Array.from({ length: STREAMS }, (_, i) => `many-${run}-${i}`);
      const perUser = users.map((u, i) => watch(clients[i % clients.length]!, { selector: { case: "userId", value: u } }));
      const slow = pausedStream(a.grpcAddress);
      await Promise.all(perUser.map((w) => w.until("caught up", opened, 60_000)));
      await slow.opened;
      const subscribers = a.feed!.stats().subscribers;
      expect(subscribers).toBeGreaterThanOrEqual(STREAMS + 1);

      // The burst: one notification per recipient, 3 events each, with 50 Creates in flight.
      let maxQueued = 0;
      const sampler = setInterval(() => (maxQueued = Math.max(maxQueued, a.feed!.stats().maxQueued)), 5);
      const ids: string[] = new Array<string>(STREAMS);
      let next = 0;
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          for (let i = next++; i < STREAMS; i = next++) ids[i] = await createSms(clients[i % clients.length]!, users[i]!, "burst");
        }),
      );
      await Promise.all(perUser.map((w, i) => w.until(`stream ${i}: SENT`, (x) => allSent(x, [ids[i]!]), 90_000)));
      clearInterval(sampler);

      // Every stream got exactly its recipient's three events.
      perUser.forEach((w, i) => expect(keysOf(w.events())).toEqual([`${ids[i]}#1`, `${ids[i]}#2`, `${ids[i]}#3`]));
      // The reader that stopped was cut off (its subscription and queue are gone; every other
      // stream is still there), and no queue ever held more than the buffer.
      expect(a.feed!.stats().subscribers).toBe(subscribers - 1);
      expect(maxQueued).toBeLessThanOrEqual(BUFFER);
      expect(maxQueued).toBeGreaterThan(0);

      // It then reads what the transport held and gets the documented error. The trailer names
      // the last message the server wrote; the client resumes from the last one it *received*.
      // (They differ when grpc-js drops messages it had buffered for a paused reader once the
      // status arrives: 17 of 400 in a bare grpc-js reproduction. Hence the rule.)
      const { messages, error } = await slow.drain();
      expect(error.code).toBe(Code.ResourceExhausted);
      expect(error.details).toContain(`stream fell more than ${BUFFER} events behind`);
      // Cursors are sealed with the deployment's key (in its database), for the tenant.
      const cursors = createCursorCodec(await loadCursorKey(a.db.pool));
      const written = cursors.decode("tenant-a", error.metadata.get(RESUME_CURSOR_HEADER)[0] as string);
      const cursor = messages.at(-1)!.cursor;
      expect(written).toBeGreaterThanOrEqual(cursors.decode("tenant-a", cursor)!);
      expect(error.details).toContain(`after="${error.metadata.get(RESUME_CURSOR_HEADER)[0] as string}"`);
      const resumed = watch(clients[1]!, { after: cursor });
      await resumed.until("every SENT", (x) => allSent({ ...x, events: () => [...eventsOf(messages), ...x.events()] }, ids), 60_000);
      resumed.stop();
      const union = [...eventsOf(messages), ...resumed.events()].filter((e) => ids.includes(e.notificationId));
      expect(keysOf(union).sort()).toEqual(await storedKeys(a.db.pool, ids));
      for (const w of perUser) w.stop();
    } finally {
      for (const client of clients) client.close();
    }
  }, 240_000);
});

const eventsOf = (messages: readonly WatchStatusResponse[]) => messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : []));

/**
 * A tenant-wide stream over raw grpc-js that reads its first message and then stops reading,
 * so HTTP/2 flow control pushes back to the server: the reader every operator fears.
 */
function pausedStream(address: string) {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${KEY_A}`);
  const call = client.makeServerStreamRequest(
    "/herald.v1.NotificationService/WatchStatus",
    (m: Uint8Array) => Buffer.from(m),
    (b: Buffer) => fromBinary(WatchStatusResponseSchema, b),
    toBinary(WatchStatusRequestSchema, create(WatchStatusRequestSchema, {})),
    md,
  );
  const messages: WatchStatusResponse[] = [];
  let status: grpc.StatusObject | undefined;
  call.on("status", (s: grpc.StatusObject) => (status = s));
  call.on("error", () => {}); // the status is read from "status"
  const opened = new Promise<void>((resolve) => {
    call.once("data", (m: WatchStatusResponse) => {
      messages.push(m);
      call.pause();
      resolve();
    });
  });
  return {
    opened,
    async drain(): Promise<{ messages: WatchStatusResponse[]; error: grpc.StatusObject }> {
      // grpc-js reports the status as soon as the trailers arrive, which can be before the
      // messages buffered ahead of them are read: read to the end, then take the status.
      await new Promise<void>((resolve) => {
        call.on("data", (m: WatchStatusResponse) => messages.push(m));
        call.once("end", resolve);
        call.resume();
      });
      const error = status ?? (await new Promise<grpc.StatusObject>((resolve) => call.once("status", resolve)));
      client.close();
      return { messages, error };
    },
  };
}
