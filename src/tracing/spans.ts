import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { tracingOn } from "./state.js";
import { formatTraceparent, parseTraceparent } from "./traceparent.js";

// Herald's own spans, where no instrumentation sees the work: the accept, the relay's publish of
// an outbox row, the worker's handling of a Dispatch, the provider call and the outcome's status
// change. Attribute names follow the OpenTelemetry semantic conventions (messaging.*, rpc.*,
// error.type) plus herald.* for Herald's own: notification id, channel, attempt, provider, status.
// Never message content, recipients' addresses or user ids.
//
// Every helper first asks tracingOn(): with no SDK started they do nothing at all, not even build
// a no-op span, so the hot paths pay one boolean read.

const tracer = trace.getTracer("herald");

/** The span the current context holds, or the remote parent a traceparent header names. */
function parentContext(traceparent: string | null | undefined): Context {
  const active = context.active();
  if (trace.getSpanContext(active)) return active;
  const remote = parseTraceparent(traceparent);
  return remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
}

/** A span whose parent is the traceparent carried on an outbox row or a Kafka header (none: a new trace). */
function contextOf(traceparent: string | null | undefined): Context {
  const remote = parseTraceparent(traceparent);
  return remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
}

function failed(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.setAttribute("error.type", err instanceof Error ? err.name : "Error");
}

/** Runs `fn` inside `span`, ending it when `fn` settles. */
async function within<T>(span: Span, parent: Context, fn: () => Promise<T>, onResult?: (value: T) => void): Promise<T> {
  try {
    const value = await context.with(trace.setSpan(parent, span), fn);
    onResult?.(value);
    return value;
  } catch (err) {
    failed(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** The RPCs that store notifications: each call is one `herald.accept` span. */
export type AcceptMethod = "Create" | "Schedule" | "Notify" | "CreateBatch";

/**
 * `herald.accept`: one Create, Schedule, Notify or CreateBatch being stored. Its parent is the
 * RPC's server span (the grpc and http instrumentations continue the caller's traceparent) or,
 * where no instrumentation made one (Connect over HTTP/2), the caller's `traceparent` header
 * itself. `fn` gets the traceparent to store with the notification(s): this span's, so everything
 * that follows (for a fan-out or a batch, every notification's publish and delivery) hangs under
 * it; undefined when tracing is off. `attributes` describe the call, `outcome` its result.
 */
export function traceAccept<T>(
  method: AcceptMethod,
  callerTraceparent: () => string | null | undefined,
  attributes: () => Attributes,
  fn: (traceparent: string | undefined) => Promise<T>,
  outcome?: (value: T) => Attributes,
): Promise<T> {
  if (!tracingOn()) return fn(undefined);
  const parent = parentContext(trace.getSpanContext(context.active()) ? undefined : callerTraceparent());
  const span = tracer.startSpan(
    "herald.accept",
    { kind: SpanKind.INTERNAL, attributes: { "rpc.service": "herald.v1.NotificationService", "rpc.method": method, ...attributes() } },
    parent,
  );
  const traceparent = formatTraceparent(span.spanContext());
  return within(span, parent, () => fn(traceparent), outcome && ((value) => span.setAttributes(outcome(value))));
}

/** What the relay needs of a record to trace its publish (a KafkaRecord has it). */
export interface PublishedRecord {
  topic: string;
  headers: Record<string, string>;
}

/**
 * One producer span per record that carries a traceparent (a row written while tracing was on),
 * child of that traceparent; the record's header is replaced by the span's own, so the worker's
 * consumer span hangs under the publish. Returns the function that ends them once Kafka answered;
 * undefined when there is nothing to trace.
 */
export function tracePublish(records: readonly PublishedRecord[]): ((err?: unknown) => void) | undefined {
  if (!tracingOn()) return undefined;
  const spans: Span[] = [];
  for (const record of records) {
    const traceparent = record.headers.traceparent;
    if (!traceparent) continue;
    const span = tracer.startSpan(
      `send ${record.topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "send",
          "messaging.operation.name": "send",
          "messaging.destination.name": record.topic,
          ...notificationAttributes(record.headers),
        },
      },
      contextOf(traceparent),
    );
    record.headers = { ...record.headers, traceparent: formatTraceparent(span.spanContext()) };
    spans.push(span);
  }
  if (spans.length === 0) return undefined;
  return (err) => {
    for (const span of spans) {
      if (err !== undefined) failed(span, err);
      span.end();
    }
  };
}

/** herald.* attributes from the headers Herald writes on its records. */
function notificationAttributes(headers: Record<string, string>): Attributes {
  const attributes: Attributes = {};
  if (headers.attempt) attributes["herald.attempt"] = Number(headers.attempt);
  return attributes;
}

/** What the worker's span tells of a Kafka record (a ConsumedMessage has it) ... */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: string;
  headers: Record<string, string>;
}

/** ... and of the Dispatch it carries. */
export interface DispatchRef {
  notificationId: string;
  attempt: number;
}

/**
 * The worker's consumer span around one Dispatch (claim, render, send, outcome), child of the
 * relay's producer span through the record's traceparent header; active while `fn` runs, so the
 * pg and ioredis spans and every log line of the delivery belong to it.
 */
export function traceDelivery<T>(record: ConsumedRecord, dispatch: DispatchRef, fn: () => Promise<T>): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = contextOf(record.headers.traceparent);
  const span = tracer.startSpan(
    `process ${record.topic}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": String(record.partition),
        "messaging.kafka.offset": Number(record.offset),
        "herald.notification_id": dispatch.notificationId,
        "herald.attempt": dispatch.attempt,
      },
    },
    parent,
  );
  return within(span, parent, fn);
}

/** The provider call: a client span under the delivery's. */
export function traceProviderCall<T>(provider: string, channel: string, fn: () => Promise<T>): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = context.active();
  const span = tracer.startSpan(
    `${provider} send`,
    { kind: SpanKind.CLIENT, attributes: { "herald.provider": provider, "herald.channel": channel } },
    parent,
  );
  return within(span, parent, fn);
}

/** `herald.status`: the outcome of an attempt being stored (the row, its event, its records). */
export function traceOutcome<T>(status: string, fn: () => Promise<T>): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = context.active();
  const span = tracer.startSpan("herald.status", { kind: SpanKind.INTERNAL, attributes: { "herald.status": status } }, parent);
  return within(span, parent, fn);
}
