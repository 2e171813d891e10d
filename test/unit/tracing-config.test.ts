import { TraceFlags } from "@opentelemetry/api";
import { describe, expect, it } from "vitest";
import { tracingConfigured } from "../../src/tracing/configured.js";
import { formatTraceparent, parseTraceparent } from "../../src/tracing/traceparent.js";

describe("tracingConfigured: the standard variables decide", () => {
  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "  " }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: " TRUE " }, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "false" }, true],
    [{ OTEL_SERVICE_NAME: "herald" }, false],
  ])("%j → %s", (env, on) => {
    expect(tracingConfigured(env)).toBe(on);
  });
});

describe("traceparent", () => {
  const header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

  it("parses a W3C traceparent into a remote span context and formats it back", () => {
    const sc = parseTraceparent(header);
    expect(sc).toEqual({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED, isRemote: true });
    expect(formatTraceparent(sc!)).toBe(header);
    expect(formatTraceparent({ ...sc!, traceFlags: TraceFlags.NONE })).toBe(header.replace(/01$/, "00"));
  });

  it("keeps only the sampled flag, and reads upper case and surrounding spaces", () => {
    expect(parseTraceparent(` ${header.toUpperCase().replace(/01$/, "03")} `)?.traceFlags).toBe(TraceFlags.SAMPLED);
  });

  it.each([
    undefined,
    null,
    "",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    "not a traceparent",
  ])("refuses %j", (value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});
