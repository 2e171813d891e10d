import type { Channel } from "../../../gen/herald/v1/notification_pb.js";
import { DeliveryConfigError, type ProvidersConfig } from "../../config-delivery.js";
import type { ChannelName } from "../../domain/channels.js";
import type { EgressPolicy } from "../../domain/egress.js";
import { channelName } from "../../kafka/topics.js";
import type { Logger } from "../../log.js";
import { createFcmProvider } from "./fcm.js";
import type { Provider } from "./provider.js";
import { tracingOn } from "../../tracing/state.js";
import { tracedProvider } from "./traced.js";
import { createSinkProvider } from "./sink.js";
import { createSmtpProvider } from "./smtp.js";
import { createTwilioProvider } from "./twilio.js";
import { createWebhookProvider } from "./webhook.js";

// The one place that turns provider config into a Provider; only process entries call it
// (workers receive the Provider). Base URLs, credentials and timeouts all come from config.

export type { Provider, RenderedMessage, SendResult } from "./provider.js";

export interface ProviderDeps {
  /** Root folder of the local sink (config.delivery.sinkDir). */
  sinkDir: string;
  log: Logger;
  /** Where webhooks may go. @defaultValue public addresses only */
  egress?: EgressPolicy;
}

const variable: Record<ChannelName, string> = {
  email: "HERALD_EMAIL_PROVIDER (sink or smtp)",
  sms: "HERALD_SMS_PROVIDER (sink or twilio)",
  push: "HERALD_PUSH_PROVIDER (sink or fcm)",
  webhook: "HERALD_WEBHOOK_PROVIDER (sink or http)",
};

/**
 * The configured provider for a channel. Throws DeliveryConfigError (name "ConfigError") when the
 * channel has none, so a worker for it refuses to start instead of failing every message.
 */
export function createProvider(channel: Channel, config: ProvidersConfig, deps: ProviderDeps): Provider {
  const provider = configuredProvider(channel, config, deps);
  // With tracing on, each call is a client span (tracing starts before any role builds providers).
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
      return c.kind === "sink" ? sink() : createTwilioProvider(c);
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
