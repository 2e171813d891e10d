import type { Admin } from "kafkajs";

// Consumer lag as `kafka-consumer-groups --describe` shows it: per partition, the log-end offset
// (the next offset the broker will write) minus the group's committed offset. Read with the admin
// client only, so it costs the group nothing and works while its members are dead (which is when
// an operator needs it most).

/** One group reading one topic (full names, prefix included). */
export interface GroupTopic {
  group: string;
  topic: string;
}

export interface PartitionLag {
  group: string;
  topic: string;
  partition: number;
  /** The next offset the broker will write. */
  logEndOffset: number;
  /** The group's committed offset, or null when it has committed nothing on this partition. */
  committedOffset: number | null;
  /**
   * Records written and not yet committed. With no commit, every retained record counts (Herald's
   * groups start from the beginning), so a group that never ran shows its whole backlog.
   */
  lag: number;
}

/** Lag of every partition of each group's topic; a topic that does not exist yields no rows. */
export async function readLag(admin: Admin, pairs: readonly GroupTopic[]): Promise<PartitionLag[]> {
  const existing = new Set(await admin.listTopics());
  const present = pairs.filter((p) => existing.has(p.topic));
  const ends = new Map<string, Promise<Awaited<ReturnType<Admin["fetchTopicOffsets"]>>>>();
  for (const { topic } of present) if (!ends.has(topic)) ends.set(topic, admin.fetchTopicOffsets(topic));
  const rows: PartitionLag[] = [];
  await Promise.all(
    present.map(async ({ group, topic }) => {
      const [offsets, committed] = await Promise.all([ends.get(topic)!, admin.fetchOffsets({ groupId: group, topics: [topic] })]);
      const byPartition = new Map<number, number>();
      for (const t of committed) for (const p of t.partitions) byPartition.set(p.partition, Number(p.offset));
      for (const o of offsets) {
        const end = Number(o.high);
        const low = Number(o.low);
        const c = byPartition.get(o.partition);
        const committedOffset = c === undefined || c < 0 ? null : c;
        // A committed offset below the log start (retention deleted what the group never read)
        // counts from the log start, as the broker would reset it.
        const from = committedOffset === null ? low : Math.max(committedOffset, low);
        rows.push({ group, topic, partition: o.partition, logEndOffset: end, committedOffset, lag: Math.max(0, end - from) });
      }
    }),
  );
  rows.sort((a, b) => a.group.localeCompare(b.group) || a.topic.localeCompare(b.topic) || a.partition - b.partition);
  return rows;
}
