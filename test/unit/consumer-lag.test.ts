import type { Admin } from "kafkajs";
import { describe, expect, it } from "vitest";
import { readLag } from "../../src/kafka/lag.js";

// readLag over a fake admin client: the arithmetic `kafka-consumer-groups --describe` does, and
// which calls it makes. The real broker's answer is in test/kafka-lag.test.ts.

interface FakeTopic {
  /** Per partition: [log start (low), log end (high)]. */
  offsets: Array<[number, number]>;
  /** group → per partition the committed offset ("-1": none). */
  committed: Record<string, string[]>;
}

function fakeAdmin(topics: Record<string, FakeTopic>) {
  const calls = { listTopics: 0, fetchTopicOffsets: [] as string[], fetchOffsets: [] as string[] };
  const admin = {
    async listTopics() {
      calls.listTopics++;
      return Object.keys(topics);
    },
    async fetchTopicOffsets(topic: string) {
      calls.fetchTopicOffsets.push(topic);
      return topics[topic]!.offsets.map(([low, high], partition) => ({ partition, low: String(low), high: String(high), offset: String(high) }));
    },
    async fetchOffsets({ groupId, topics: names }: { groupId: string; topics: string[] }) {
      calls.fetchOffsets.push(`${groupId}@${names.join(",")}`);
      return names.map((topic) => ({
        topic,
        partitions: (topics[topic]!.committed[groupId] ?? topics[topic]!.offsets.map(() => "-1")).map((offset, partition) => ({ partition, offset, metadata: null })),
      }));
    },
  };
  return { admin: admin as unknown as Admin, calls };
}

describe("readLag", () => {
  it("is log-end minus committed per partition; with no commit, everything retained counts", async () => {
    const { admin } = fakeAdmin({
      "p.herald.email": { offsets: [[0, 10], [0, 4], [0, 0]], committed: { "p.herald-worker-email": ["7", "-1", "-1"] } },
    });
    expect(await readLag(admin, [{ group: "p.herald-worker-email", topic: "p.herald.email" }])).toEqual([
      { group: "p.herald-worker-email", topic: "p.herald.email", partition: 0, logEndOffset: 10, committedOffset: 7, lag: 3 },
      { group: "p.herald-worker-email", topic: "p.herald.email", partition: 1, logEndOffset: 4, committedOffset: null, lag: 4 },
      { group: "p.herald-worker-email", topic: "p.herald.email", partition: 2, logEndOffset: 0, committedOffset: null, lag: 0 },
    ]);
  });

  it("counts from the log start when retention deleted records the group never read, and from nothing when none was retained", async () => {
    const { admin } = fakeAdmin({
      t: { offsets: [[50, 80], [30, 30]], committed: { g: ["20", "-1"] } },
    });
    expect((await readLag(admin, [{ group: "g", topic: "t" }])).map((r) => [r.committedOffset, r.lag])).toEqual([
      [20, 30],
      [null, 0],
    ]);
  });

  it("leaves out topics that do not exist, reads each topic's ends once, and sorts by group, topic, partition", async () => {
    const { admin, calls } = fakeAdmin({
      b: { offsets: [[0, 2], [0, 1]], committed: { g2: ["2", "0"], g1: ["1", "1"] } },
      a: { offsets: [[0, 5]], committed: { g2: ["5"] } },
    });
    const rows = await readLag(admin, [
      { group: "g2", topic: "b" },
      { group: "g1", topic: "b" },
      { group: "g2", topic: "a" },
      { group: "g1", topic: "missing" },
    ]);
    expect(rows.map((r) => `${r.group} ${r.topic}/${r.partition} lag=${r.lag}`)).toEqual([
      "g1 b/0 lag=1",
      "g1 b/1 lag=0",
      "g2 a/0 lag=0",
      "g2 b/0 lag=0",
      "g2 b/1 lag=1",
    ]);
    expect(calls.listTopics).toBe(1);
    expect(calls.fetchTopicOffsets.sort()).toEqual(["a", "b"]);
    expect(calls.fetchOffsets.sort()).toEqual(["g1@b", "g2@a", "g2@b"]);
  });

  it("answers nothing for nothing asked", async () => {
    const { admin, calls } = fakeAdmin({});
    expect(await readLag(admin, [])).toEqual([]);
    expect(calls.fetchOffsets).toEqual([]);
  });
});
