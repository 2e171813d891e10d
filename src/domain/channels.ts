// The channels Herald delivers on, by the name operators and the CLI use
// (`--channel email`, HERALD_RATE_LIMIT_EMAIL, herald.email). The protobuf
// enum (herald.v1.Channel) is the wire form; src/kafka/topics.ts maps it to these names.

export type ChannelName = "email" | "sms" | "push" | "webhook";
export const channelNames: readonly ChannelName[] = ["email", "sms", "push", "webhook"];
