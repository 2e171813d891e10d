import { Channel } from "../../gen/herald/v1/notification_pb.js";

// Logical topic names. The outbox stores these; the relay and consumers add the
// configured prefix (HERALD_TOPIC_PREFIX), so test runs and environments can
// share a broker without sharing topics.

export const STATUS_TOPIC = "herald.status";
export const DLQ_TOPIC = "herald.dlq";

const channelNames: ReadonlyMap<Channel, string> = new Map([
  [Channel.EMAIL, "email"],
  [Channel.SMS, "sms"],
  [Channel.PUSH, "push"],
  [Channel.WEBHOOK, "webhook"],
]);

/** Every deliverable channel, in enum order. */
export const CHANNELS: readonly Channel[] = [...channelNames.keys()];

/** "email", "sms", ... as used in topic, group and CLI names. */
export function channelName(channel: Channel): string {
  const name = channelNames.get(channel);
  if (!name) throw new Error(`no topic for channel ${channel}`);
  return name;
}

export function channelFromName(name: string): Channel | undefined {
  for (const [channel, n] of channelNames) if (n === name) return channel;
  return undefined;
}

/** herald.email, herald.sms, herald.push, herald.webhook. */
export function channelTopic(channel: Channel): string {
  return `herald.${channelName(channel)}`;
}

/** The consumer group of a channel's workers (logical: the topic prefix is added by src/kafka). */
export function workerGroup(channel: Channel): string {
  return `herald-worker-${channelName(channel)}`;
}

/** Every topic Herald creates on start. */
export function allTopics(): string[] {
  return [...CHANNELS.map(channelTopic), STATUS_TOPIC, DLQ_TOPIC];
}

/** Outbox record headers are plain strings; Kafka carries them as bytes. */
export type RecordHeaders = Record<string, string>;
