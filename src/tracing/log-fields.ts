import { context, trace } from "@opentelemetry/api";
import { tracingOn } from "./state.js";

// The fields pino adds to every line (log.ts's mixin): the trace and span a line was written in,
// so a line found by trace id leads to its trace and back. One boolean read per line when off.

const NONE: Record<string, string> = Object.freeze({});

export function traceLogFields(): Record<string, string> {
  if (!tracingOn()) return NONE;
  const sc = trace.getSpanContext(context.active());
  return sc ? { trace_id: sc.traceId, span_id: sc.spanId } : NONE;
}

/**
 * pino's mixinMergeStrategy: its default assigns the line's own fields into the mixin's object,
 * which would be the one shared (frozen) empty object; a line outside any span keeps its fields as
 * they are, so nothing is allocated for it.
 */
export function mergeTraceLogFields(fields: object, trace: object): object {
  return trace === NONE ? fields : Object.assign(trace, fields);
}
