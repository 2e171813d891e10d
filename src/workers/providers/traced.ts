import { traceProviderCall } from "../../tracing/spans.js";
import type { Provider } from "./provider.js";

// A provider whose every send is a client span (`<name> send`, herald.provider, herald.channel),
// under the delivery's consumer span. Wrapped once where providers are built, and only when
// tracing is on, so an untraced worker calls its provider directly.

export function tracedProvider(provider: Provider, channel: string): Provider {
  return {
    name: provider.name,
    send: (message, signal) => traceProviderCall(provider.name, channel, () => provider.send(message, signal)),
    close: () => provider.close(),
  };
}
