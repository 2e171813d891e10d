import { startOtlpCollector } from "../../test/support/otlp-collector.js";

// `npm run bench -- --otlp`: tracing on in every Herald process the scenarios start, exporting to
// the OTLP collector stand-in (the one the tracing test uses), so the cost of tracing on can be
// read against a run without it. The roles inherit the bench's environment (bench/processes.ts),
// so the endpoint is set there, for the whole run.

export interface OtlpStandIn {
  /** Spans and export requests received, for the run's log. */
  summary(): string;
  close(): Promise<void>;
}

export async function startOtlpStandIn(env: NodeJS.ProcessEnv): Promise<OtlpStandIn> {
  const collector = await startOtlpCollector();
  env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.endpoint;
  return {
    summary: () => `otlp stand-in at ${collector.endpoint}: ${collector.spans().length} spans in ${collector.requests()} export requests`,
    close: () => collector.close(),
  };
}
