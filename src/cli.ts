#!/usr/bin/env node
// The process entry (package.json "bin"). Tracing, when the OTEL_* variables configure it, has to
// hook pg, ioredis, grpc-js and node:http before anything imports them, and an ESM module's static
// imports all load before its first line runs: so this entry imports only the tracing check, and
// the CLI proper (src/cli/main.ts) after it.
import { startTracingFromEnv } from "./tracing/entry.js";

await startTracingFromEnv(process.argv.slice(2), process.env);
await import("./cli/main.js");
