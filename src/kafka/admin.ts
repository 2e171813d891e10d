import type { Admin } from "kafkajs";
import type { Logger } from "../log.js";
import { sleep } from "../loop/sleep.js";

export interface TopicSettings {
  partitions: number;
  retentionMs: number;
  /** Replicas per partition; 0 or absent: the broker's default.replication.factor. */
  replication?: number;
  /** The topic's min.insync.replicas; 0 or absent: the broker's default. */
  minInsyncReplicas?: number;
}

/**
 * Creates the topics (full names) that do not exist yet, then waits until every partition of
 * every named topic has a leader. Safe to run from several processes at once: a topic created
 * by another one in between counts as existing. Returns the names this call created.
 */
export async function ensureTopics(
  admin: Admin,
  names: readonly string[],
  settings: TopicSettings,
  log: Logger,
  timeoutMs = 30_000,
): Promise<string[]> {
  const existing = await describeTopics(admin, names);
  const missing = names.filter((n) => !existing.has(n));
  const { replication = 0, minInsyncReplicas = 0 } = settings;
  for (const [name, { partitions, replicas }] of existing) {
    // Partitions are never added behind an operator's back: it changes which partition a key maps to.
    if (partitions < settings.partitions) {
      log.warn({ topic: name, partitions, wanted: settings.partitions }, "kafka topic has fewer partitions than configured");
    }
    // Nor replicas: a reassignment moves data between brokers and is the operator's to plan.
    if (replicas < replication) {
      log.warn({ topic: name, replicas, wanted: replication }, "kafka topic has fewer replicas than configured; a lost broker can lose its records");
    }
  }
  let created: string[] = [];
  if (missing.length > 0) {
    // kafkajs answers false (no throw) when every failure is TOPIC_ALREADY_EXISTS, i.e. another
    // process won the race; leaders are awaited below either way.
    const ok = await admin.createTopics({
      waitForLeaders: false,
      timeout: timeoutMs,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: settings.partitions,
        // -1: the broker's default.replication.factor (KIP-464).
        replicationFactor: replication > 0 ? replication : -1,
        configEntries: [
          { name: "retention.ms", value: String(settings.retentionMs) },
          ...(minInsyncReplicas > 0 ? [{ name: "min.insync.replicas", value: String(minInsyncReplicas) }] : []),
        ],
      })),
    });
    // On false we cannot tell which ones we created; report none rather than guess.
    created = ok ? missing : [];
    if (created.length > 0) log.info({ topics: created, partitions: settings.partitions, replication, minInsyncReplicas }, "kafka topics created");
  }
  await waitForLeaders(admin, names, timeoutMs);
  return created;
}

export interface TopicShape {
  partitions: number;
  /** Replicas of its least replicated partition. */
  replicas: number;
}

/** Partition and replica counts per existing topic (full names); missing topics are absent from the map. */
export async function describeTopics(admin: Admin, names: readonly string[]): Promise<Map<string, TopicShape>> {
  const all = new Set(await admin.listTopics());
  const present = names.filter((n) => all.has(n));
  if (present.length === 0) return new Map();
  const { topics } = await admin.fetchTopicMetadata({ topics: present });
  return new Map(topics.map((t) => [t.name, { partitions: t.partitions.length, replicas: Math.min(...t.partitions.map((p) => p.replicas.length)) }]));
}

async function waitForLeaders(admin: Admin, names: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let lastError: unknown;
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [...names] });
      const ready =
        topics.length === names.length &&
        topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
      if (ready) return;
    } catch (err) {
      // A topic created a moment ago can answer UNKNOWN_TOPIC_OR_PARTITION or LEADER_NOT_AVAILABLE.
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`kafka topics have no leader after ${timeoutMs} ms: ${names.join(", ")}`, { cause: lastError });
    }
    await sleep(100);
  }
}
