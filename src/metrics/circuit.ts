import type { Registry } from "prom-client";
import { counterIn, gaugeIn } from "./instruments.js";

// Provider failover: each provider's circuit breaker state as this process last saw it, and the
// sends that went to a later provider in the list because an earlier one's breaker was open.

export interface CircuitMetrics {
  /** 0 closed, 1 half-open, 2 open. */
  state(channel: string, provider: string, value: number): void;
  /** A send went to `to` instead of `from`, the preferred provider whose breaker was open. */
  failover(channel: string, from: string, to: string): void;
}

export function createCircuitMetrics(registry: Registry): CircuitMetrics {
  const state = gaugeIn(registry, {
    name: "herald_provider_circuit_state",
    help: "Circuit breaker state of each provider of a channel with failover: 0 closed, 1 half-open, 2 open.",
    labelNames: ["channel", "provider"],
  });
  const failovers = counterIn(registry, {
    name: "herald_provider_failovers_total",
    help: "Sends that went to a later provider because an earlier one's circuit breaker was open.",
    labelNames: ["channel", "from", "to"],
  });
  return {
    state: (channel, provider, value) => state.labels(channel, provider).set(value),
    failover: (channel, from, to) => failovers.labels(channel, from, to).inc(),
  };
}
