#!/usr/bin/env node
/* global URL, console, process */
// Keeps the dependency direction of src/ true (docs/architecture.md, "Layers"):
// fails on an import cycle, or on an import from a lower layer to a higher one.
// Type-only imports count too: a cycle of types is still two files that cannot
// be understood one without the other.
// Run by `npm run lint`: node scripts/check-imports.mjs
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

// High → low. A file may import its own layer, any lower one, and the shared leaves.
const layers = [
  ["cli", ["src/cli.ts", "src/cli/"]],
  ["roles", ["src/roles/"]],
  ["workers", ["src/workers/"]],
  // src/receipts/: provider callbacks on the API's HTTP listener, beside the RPCs; src/unsubscribe/:
  // the one-click unsubscribe links, on the same listener.
  ["server", ["src/server/", "src/receipts/", "src/unsubscribe/"]],
  // src/keys/: the stored API keys each API instance holds in memory, reloaded from the store.
  ["feed/relay/scheduler/templates/retention/keys", ["src/feed/", "src/relay/", "src/scheduler/", "src/templates/", "src/retention/", "src/keys/"]],
  // Metrics share the store's layer: the store's group commit records into them, and a collector
  // may read the store's queries (the backlog gauges) or Kafka on scrape.
  ["store/redis/metrics", ["src/store/", "src/redis.ts", "src/metrics/"]],
  // The store writes outbox rows inside its own transactions; the outbox knows no store.
  ["outbox", ["src/outbox/"]],
  ["config", ["src/config.ts", "src/config-"]],
  ["domain/kafka/client", ["src/domain/", "src/kafka/", "src/client/"]],
  ["gen", ["gen/"]],
];
// src/metrics/: each area's instruments, recorded by whichever layer does the work (prom-client only).
const leaves = ["src/errors.ts", "src/clock.ts", "src/log.ts", "src/loop/", "src/health/"];
// src/tracing/: span helpers and the log mixin over @opentelemetry/api; the SDK only when tracing is on.
leaves.push("src/tracing/");

function layerOf(file) {
  if (leaves.some((p) => file.startsWith(p))) return { name: "leaf", rank: layers.length };
  const rank = layers.findIndex(([, prefixes]) => prefixes.some((p) => file.startsWith(p)));
  return rank < 0 ? undefined : { name: layers[rank][0], rank };
}

function walk(dir) {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return walk(path);
    return /\.ts$/.test(e.name) && !e.name.endsWith(".d.ts") ? [path] : [];
  });
}

const specifier = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** The repository-relative .ts file each relative import of `file` names. */
function importsOf(file) {
  const text = readFileSync(join(root, file), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, "");
  const out = [];
  for (const m of text.matchAll(specifier)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith(".")) continue;
    out.push(relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, ".ts").split("\\").join("/"));
  }
  return out;
}

const files = walk("src");
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const problems = [];

for (const file of files) {
  const from = layerOf(file);
  if (!from) problems.push(`${file}: in no layer; add it to scripts/check-imports.mjs`);
  for (const target of graph.get(file)) {
    const to = layerOf(target);
    if (from && to && to.rank < from.rank) {
      problems.push(`${file} (${from.name}) imports ${target} (${to.name}), a higher layer`);
    }
  }
}

// Cycles: depth-first search; a back edge to a file on the stack closes one.
const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, "open");
  stack.push(file);
  for (const target of graph.get(file) ?? []) {
    if (!graph.has(target)) continue;
    if (state.get(target) === "open") {
      problems.push(`import cycle: ${[...stack.slice(stack.indexOf(target)), target].join(" → ")}`);
    } else if (!state.has(target)) {
      visit(target);
    }
  }
  stack.pop();
  state.set(file, "done");
}
for (const file of files) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  for (const p of problems) console.error(`check-imports: ${p}`);
  process.exit(1);
}
console.log(`check-imports: ${files.length} files, no cycle, no import against the layers`);
