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

/**
 * A channel's two lanes: `main` carries normal and low priority, `high` carries PRIORITY_HIGH, on
 * its own topic read by its own consumer group, so a backlog on the main topic never stands in
 * front of a high-priority notification (docs/architecture.md, "Priority lanes").
 */
export type Lane = "main" | "high";
export const LANES: readonly Lane[] = ["main", "high"];

/** herald.email, herald.sms, ...; the high lane's is herald.email.high, herald.sms.high, ... */
export function channelTopic(channel: Channel, lane: Lane = "main"): string {
  return lane === "high" ? `herald.${channelName(channel)}.high` : `herald.${channelName(channel)}`;
}

/** The consumer group of a channel lane's workers (logical: the topic prefix is added by src/kafka). */
export function workerGroup(channel: Channel, lane: Lane = "main"): string {
  return lane === "high" ? `herald-worker-${channelName(channel)}-high` : `herald-worker-${channelName(channel)}`;
}

/** One worker group on its topic. */
export interface WorkerSubscription {
  channel: Channel;
  lane: Lane;
  group: string;
  topic: string;
}

/** Every channel's worker groups on their topics, main lane first: what consumer lag covers. */
export function workerSubscriptions(): WorkerSubscription[] {
  return CHANNELS.flatMap((channel) => LANES.map((lane) => ({ channel, lane, group: workerGroup(channel, lane), topic: channelTopic(channel, lane) })));
}

/** Every channel topic of both lanes, where Dispatch records go. */
export function dispatchTopics(): string[] {
  return CHANNELS.flatMap((c) => LANES.map((lane) => channelTopic(c, lane)));
}

/**
 * The main-lane topic of a high-lane topic; any other topic as it is. With priority lanes off
 * (HERALD_PRIORITY_LANES=off) the relay publishes through this, so every Dispatch of a channel
 * shares one topic, as before lanes existed.
 */
export function withoutLane(topic: string): string {
  for (const c of CHANNELS) if (topic === channelTopic(c, "high")) return channelTopic(c);
  return topic;
}

/** Every topic Herald creates on start. */
export function allTopics(): string[] {
  return [...dispatchTopics(), STATUS_TOPIC, DLQ_TOPIC];
}

/** Outbox record headers are plain strings; Kafka carries them as bytes. */
export type RecordHeaders = Record<string, string>;
