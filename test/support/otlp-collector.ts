import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

// An OTLP/HTTP collector stand-in: a real HTTP server taking `POST /v1/traces` in protobuf (what
// @opentelemetry/exporter-trace-otlp-proto sends) and keeping the spans, decoded by hand from the
// few fields of opentelemetry/proto/trace/v1/trace.proto that tests read.

export type AttributeValue = string | number | boolean | undefined;

export interface CollectedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  name: string;
  /** SpanKind as in the proto: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  /** service.name of the process that sent it. */
  service: string;
  /** Status code: 0 unset, 1 ok, 2 error. */
  status: number;
}

export const SpanKindCode = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

export interface OtlpCollector {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces). */
  readonly endpoint: string;
  /** Every span received so far, in arrival order. */
  spans(): CollectedSpan[];
  /** POSTs received (a request that did not decode is answered 400 and counted here too). */
  requests(): number;
  close(): Promise<void>;
}

export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: CollectedSpan[] = [];
  let requests = 0;
  const server = createServer((req, res) => void receive(req, res));

  async function receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    requests++;
    try {
      const raw = Buffer.concat(chunks);
      const body = req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
      spans.push(...decodeExportRequest(body));
    } catch {
      res.writeHead(400).end();
      return;
    }
    // An empty ExportTraceServiceResponse: full success.
    res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans: () => [...spans],
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Runs `field` for each field of the message in `bytes`, skipping what it does not read. */
function fields(bytes: Uint8Array, field: (no: number, wire: WireType, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (!field(no, wire, r)) r.skip(wire, no);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; } */
export function decodeExportRequest(bytes: Uint8Array): CollectedSpan[] {
  const out: CollectedSpan[] = [];
  fields(bytes, (no, _, r) => {
    if (no !== 1) return false;
    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    let service = "";
    const scoped: Uint8Array[] = [];
    fields(r.bytes(), (no2, _w, r2) => {
      if (no2 === 1) {
        // Resource { repeated KeyValue attributes = 1; }
        const attributes: Record<string, AttributeValue> = {};
        fields(r2.bytes(), (no3, _w3, r3) => (no3 === 1 ? (keyValue(r3.bytes(), attributes), true) : false));
        service = String(attributes["service.name"] ?? "");
        return true;
      }
      if (no2 === 2) return (scoped.push(r2.bytes()), true);
      return false;
    });
    // ScopeSpans { repeated Span spans = 2; }
    for (const scope of scoped) {
      fields(scope, (no3, _w3, r3) => (no3 === 2 ? (out.push(span(r3.bytes(), service)), true) : false));
    }
    return true;
  });
  return out;
}

/** Span { trace_id = 1; span_id = 2; parent_span_id = 4; name = 5; kind = 6; attributes = 9; status = 15; } */
function span(bytes: Uint8Array, service: string): CollectedSpan {
  const s: CollectedSpan = { traceId: "", spanId: "", parentSpanId: "", name: "", kind: 0, attributes: {}, service, status: 0 };
  fields(bytes, (no, _w, r) => {
    switch (no) {
      case 1: s.traceId = hex(r.bytes()); return true;
      case 2: s.spanId = hex(r.bytes()); return true;
      case 4: s.parentSpanId = hex(r.bytes()); return true;
      case 5: s.name = r.string(); return true;
      case 6: s.kind = r.int32(); return true;
      case 9: keyValue(r.bytes(), s.attributes); return true;
      case 15:
        // Status { code = 3; }
        fields(r.bytes(), (no2, _w2, r2) => (no2 === 3 ? ((s.status = r2.int32()), true) : false));
        return true;
      default: return false;
    }
  });
  return s;
}

/** KeyValue { key = 1; AnyValue value = 2; }, AnyValue { string 1, bool 2, int64 3, double 4 } */
function keyValue(bytes: Uint8Array, into: Record<string, AttributeValue>): void {
  let key = "";
  let value: AttributeValue;
  fields(bytes, (no, _w, r) => {
    if (no === 1) return ((key = r.string()), true);
    if (no !== 2) return false;
    fields(r.bytes(), (no2, _w2, r2) => {
      switch (no2) {
        case 1: value = r2.string(); return true;
        case 2: value = r2.bool(); return true;
        case 3: value = Number(r2.int64()); return true;
        case 4: value = r2.double(); return true;
        default: return false;
      }
    });
    return true;
  });
  into[key] = value;
}
