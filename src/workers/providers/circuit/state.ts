import type { BreakerConfig } from "../../../config-delivery.js";

// One provider's circuit breaker as a pure state machine: the in-process fallback runs it
// directly, and shared.lua.ts is the same machine written in Lua so every worker process moves
// one copy of it in Redis. Keep the two in step.
//
// closed: every send goes through; transient failures are counted in a fixed window (from the
// first failure counted), and `failures` of them within `windowMs` open the breaker.
// open: nothing goes through until `cooldownMs` has passed since it opened.
// half-open: exactly one send (the probe) goes through; its success closes the breaker, its
// failure opens it for another cooldown. A probe that never reports (its worker died) is
// presumed lost after `probeLeaseMs`, and the next send becomes the probe.

export type CircuitState = "closed" | "half_open" | "open";

/** The gauge's values: herald_provider_circuit_state. */
export const circuitStateValue: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

export interface BreakerState {
  state: CircuitState;
  /** Transient failures counted in the current window (closed only). */
  failures: number;
  windowStart: number;
  /** Open: when the cooldown ends. */
  openUntil: number;
  /** Half-open: when the probe in flight is presumed lost. */
  probeUntil: number;
}

/** What the breaker says about one send. */
export interface Admission {
  allowed: boolean;
  /** This send is the half-open probe: its result decides the breaker. */
  probe: boolean;
  /** The breaker's state after admitting (or refusing). */
  state: CircuitState;
  /** Refused: how long until the breaker may let a send through (cooldown or probe lease left). */
  retryInMs: number;
}

export const closedState = (): BreakerState => ({ state: "closed", failures: 0, windowStart: 0, openUntil: 0, probeUntil: 0 });

/** Admits or refuses one send at `now`; mutates `s`. */
export function admit(s: BreakerState, now: number, config: BreakerConfig): Admission {
  if (s.state === "closed") return { allowed: true, probe: false, state: "closed", retryInMs: 0 };
  const until = s.state === "open" ? s.openUntil : s.probeUntil;
  if (now < until) return { allowed: false, probe: false, state: s.state, retryInMs: until - now };
  // Cooldown over (or the last probe presumed lost): this send is the probe.
  s.state = "half_open";
  s.probeUntil = now + config.probeLeaseMs;
  return { allowed: true, probe: true, state: "half_open", retryInMs: 0 };
}

/**
 * Records how an admitted send ended: `ok` when the provider answered (accepted, or refused the
 * message itself: a permanent error says nothing against the provider), not ok for a transient
 * failure. Mutates `s` and returns the state after.
 */
export function record(s: BreakerState, ok: boolean, probe: boolean, now: number, config: BreakerConfig): CircuitState {
  if (s.state === "half_open" && probe) {
    if (ok) Object.assign(s, closedState());
    else Object.assign(s, { state: "open", openUntil: now + config.cooldownMs, probeUntil: 0 });
    return s.state;
  }
  // Sends admitted before the breaker opened, or while another send is the probe, decide nothing.
  if (s.state !== "closed" || ok) return s.state;
  if (s.failures === 0 || now - s.windowStart >= config.windowMs) {
    s.failures = 0;
    s.windowStart = now;
  }
  s.failures++;
  if (s.failures >= config.failures) Object.assign(s, { state: "open", failures: 0, windowStart: 0, openUntil: now + config.cooldownMs });
  return s.state;
}
