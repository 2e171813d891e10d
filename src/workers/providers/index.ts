import { Channel } from "../../../gen/herald/v1/notification_pb.js";
import { DeliveryConfigError, type ProvidersConfig } from "../../config-delivery.js";
import type { ChannelName } from "../../domain/channels.js";
import type { EgressPolicy } from "../../domain/egress.js";
import { channelName } from "../../kafka/topics.js";
import type { Logger } from "../../log.js";
import type { CircuitBoard } from "./circuit/board.js";
import { createFailoverProvider } from "./failover.js";
import { createFcmProvider } from "./fcm.js";
import type { Provider } from "./provider.js";
import { tracingOn } from "../../tracing/state.js";
import { tracedProvider } from "./traced.js";
import { createSinkProvider } from "./sink.js";
import { createSmtpProvider } from "./smtp.js";
import { createTwilioProvider } from "./twilio.js";
import { createVonageProvider } from "./vonage.js";
import { createWebhookProvider } from "./webhook.js";

// The one place that turns provider config into a Provider; only process entries call it
// (workers receive the Provider). Base URLs, credentials and timeouts all come from config.

export type { Provider, RenderedMessage, SendResult } from "./provider.js";
export { createCircuitBoard, type CircuitBoard } from "./circuit/board.js";
export { failedProvider } from "./attribution.js";

export interface ProviderDeps {
  /** Root folder of the local sink (config.delivery.sinkDir). */
  sinkDir: string;
  log: Logger;
  /** Where webhooks may go. @defaultValue public addresses only */
  egress?: EgressPolicy;
  /** The deployment's circuit breakers; required when a channel lists several providers. */
  breakers?: CircuitBoard;
}

const variable: Record<ChannelName, string> = {
  email: "HERALD_EMAIL_PROVIDER (sink, smtp, or a list such as smtp,smtp-backup)",
  sms: "HERALD_SMS_PROVIDER (sink, twilio, vonage, or a list such as twilio,vonage)",
  push: "HERALD_PUSH_PROVIDER (sink or fcm)",
  webhook: "HERALD_WEBHOOK_PROVIDER (sink or http)",
};

/**
 * The configured provider for a channel. Throws DeliveryConfigError (name "ConfigError") when the
 * channel has none, so a worker for it refuses to start instead of failing every message.
 */
export function createProvider(channel: Channel, config: ProvidersConfig, deps: ProviderDeps): Provider {
  // The configs of the providers after the first, each as the channel's only one.
  const later: ProvidersConfig[] =
    channel === Channel.EMAIL
      ? (config.fallbacks?.email ?? []).map((email) => ({ ...config, email }))
      : channel === Channel.SMS
        ? (config.fallbacks?.sms ?? []).map((sms) => ({ ...config, sms }))
        : [];
  const first = configuredProvider(channel, config, deps);
  if (later.length === 0) return traced(first, channel);
  const { breakers } = deps;
  const name = channelName(channel);
  if (!breakers) {
    void first.close().catch(() => {});
    throw new Error(`${name} lists several providers: createProvider needs the circuit breakers (deps.breakers)`);
  }
  const providers = [first];
  try {
    for (const c of later) providers.push(configuredProvider(channel, c, deps));
  } catch (err) {
    for (const p of providers) void p.close().catch(() => {});
    throw err;
  }
  // Each provider traced on its own, so a span names the provider that was called.
  return createFailoverProvider({ channel: name, providers: providers.map((p) => traced(p, channel)), breakers, log: deps.log.child({ channel: name }) });
}

// With tracing on, each call is a client span (tracing starts before any role builds providers).
function traced(provider: Provider, channel: Channel): Provider {
  return tracingOn() ? tracedProvider(provider, channelName(channel)) : provider;
}

function configuredProvider(channel: Channel, config: ProvidersConfig, deps: ProviderDeps): Provider {
  let name: ChannelName;
  try {
    name = channelName(channel) as ChannelName;
  } catch {
    throw new DeliveryConfigError(`no provider for channel ${channel}: not a deliverable channel`);
  }
  const log = deps.log.child({ channel: name });
  const sink = () => createSinkProvider({ dir: deps.sinkDir, channel, log });
  const missing = () => new DeliveryConfigError(`no provider is configured for channel ${name}: set ${variable[name]}`);
  switch (name) {
    case "email": {
      const c = config.email;
      if (!c) throw missing();
      return c.kind === "sink" ? sink() : createSmtpProvider(c, { log });
    }
    case "sms": {
      const c = config.sms;
      if (!c) throw missing();
      if (c.kind === "sink") return sink();
      return c.kind === "vonage" ? createVonageProvider(c) : createTwilioProvider(c);
    }
    case "push": {
      const c = config.push;
      if (!c) throw missing();
      return c.kind === "sink" ? sink() : createFcmProvider(c);
    }
    case "webhook": {
      const c = config.webhook;
      if (!c) throw missing();
      return c.kind === "sink" ? sink() : createWebhookProvider(c, { egress: deps.egress });
    }
  }
}
