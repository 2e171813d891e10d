import { register } from "node:module";
import type { IncomingMessage } from "node:http";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { markTracingStarted } from "./state.js";

// The OpenTelemetry SDK, imported (dynamically, by entry.ts) only when tracing is configured.
// Everything the SDK reads from the standard variables it reads itself: the exporter's endpoint,
// headers and timeout (OTEL_EXPORTER_OTLP_*), the sampler (OTEL_TRACES_SAMPLER / _ARG), the batch
// processor's sizes (OTEL_BSP_*) and the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).

// The modules the instrumentations patch. Herald is ESM, and an ESM import of a CommonJS package
// (pg, ioredis, @grpc/grpc-js) or of a builtin never passes through `require`, where the
// instrumentations hook by default; import-in-the-middle's loader hook (registered below, before
// the CLI proper is imported) wraps these imports instead. Only these: wrapping every module would
// cost load time for nothing and has broken modules that re-export in unusual ways.
const HOOKED = ["pg", "ioredis", "@grpc/grpc-js", "http", "node:http", "https", "node:https"];

// Probes and scrapes are not requests anyone wants a trace of, and would be most of them.
const UNTRACED_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

export interface TracingOptions {
  /** service.name unless OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise. */
  defaultServiceName: string;
}

export function startTracing(opts: TracingOptions): void {
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url, { data: { include: HOOKED } });

  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.defaultServiceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // The AsyncLocalStorage context manager and the W3C traceparent propagator, process-wide.
  provider.register();
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (req: IncomingMessage) => UNTRACED_PATHS.has(req.url?.split("?")[0] ?? "") }),
      new GrpcInstrumentation(),
      // Only inside a trace: the relay's and the scheduler's polls would each be a trace of their own.
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  markTracingStarted();
}
