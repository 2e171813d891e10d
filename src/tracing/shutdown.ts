import { ProxyTracerProvider, trace } from "@opentelemetry/api";
import { tracingOn } from "./state.js";

// The last spans of a process are in the batch processor's queue when it shuts down: flush them to
// the collector and stop the exporter. Registered with the runtime's resources (roles/runtime.ts),
// so it runs after the roles have finished (and ended their spans). Nothing to do when off.

export async function shutdownTracing(): Promise<void> {
  if (!tracingOn()) return;
  const registered = trace.getTracerProvider();
  const provider = registered instanceof ProxyTracerProvider ? registered.getDelegate() : registered;
  if ("shutdown" in provider && typeof provider.shutdown === "function") await (provider.shutdown as () => Promise<void>)();
}
