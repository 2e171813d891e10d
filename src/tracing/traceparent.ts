import { isSpanContextValid, TraceFlags, type SpanContext } from "@opentelemetry/api";

// W3C Trace Context `traceparent` (version 00) by hand: Herald stores it with a notification and
// carries it on outbox rows and Kafka headers, and formatting or parsing 55 characters needs
// neither the SDK's propagator nor the global one (which is a no-op when tracing is off).

const PATTERN = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED) === 1 ? "01" : "00"}`;
}

/** The remote span context a traceparent names; undefined for anything malformed or all-zero. */
export function parseTraceparent(value: string | null | undefined): SpanContext | undefined {
  if (!value) return undefined;
  const m = PATTERN.exec(value.trim().toLowerCase());
  if (!m) return undefined;
  const sc: SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true };
  return isSpanContextValid(sc) ? sc : undefined;
}
