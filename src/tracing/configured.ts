// Whether this process exports traces, decided from the standard OpenTelemetry variables only:
// an OTLP endpoint is set (for all signals or for traces) and the SDK is not disabled. Read by
// the process entry before anything else is imported, so it imports nothing itself.

type Env = Record<string, string | undefined>;

export function tracingConfigured(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim());
}
