/* global process */
// Preloaded into a Herald process by the tracing test (NODE_OPTIONS=--import=<this file>): on exit
// it writes which OpenTelemetry SDK modules the process loaded. The SDK packages are CommonJS
// (no "exports" map), so an ESM import of them lands in require.cache too.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
process.on("exit", () => {
  const loaded = Object.keys(require.cache)
    .map((path) => /node_modules\/(@opentelemetry\/(?:sdk-[^/]+|instrumentation[^/]*|exporter-[^/]+))\//.exec(path)?.[1])
    .filter((name) => name !== undefined);
  process.stderr.write(`otel-sdk-modules ${JSON.stringify([...new Set(loaded)].sort())}\n`);
});
