// Whether the OpenTelemetry SDK was started in this process. Herald's own spans are cut short on
// this one boolean when it was not: with no SDK, @opentelemetry/api would hand out no-op spans
// anyway, but even those cost an allocation per call on the hot paths. Process-wide by nature,
// like the API's own registered provider, and set once at start (sdk.ts).

let started = false;

export function tracingOn(): boolean {
  return started;
}

/** Called once by sdk.ts after the tracer provider is registered. */
export function markTracingStarted(): void {
  started = true;
}
