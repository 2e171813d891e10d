import type { Scenario } from "../lib/result.js";

// Every scenario `npm run bench` knows, in the order it runs them. Adding one is one line here:
// its module exports `run: Scenario`. Modules load only when their scenario runs, so one that
// fails to load is reported as that scenario's failure and the others still run.

export interface ScenarioEntry {
  id: string;
  load(): Promise<Scenario>;
}

export const scenarios: ScenarioEntry[] = [
  // ceilings first: everything after it is read against these.
  { id: "ceilings", load: async () => (await import("./ceilings.js")).run },
  { id: "create", load: async () => (await import("./create.js")).run },
  { id: "e2e", load: async () => (await import("./e2e.js")).run },
  { id: "scheduling", load: async () => (await import("./scheduling.js")).run },
  { id: "priority", load: async () => (await import("./priority.js")).run },
  { id: "fairness", load: async () => (await import("./fairness.js")).run },
  { id: "fanout", load: async () => (await import("./fanout.js")).run },
  { id: "alternatives", load: async () => (await import("./alternatives.js")).run },
  { id: "overload", load: async () => (await import("./overload.js")).run },
  { id: "retention", load: async () => (await import("./retention.js")).run },
  { id: "bulk", load: async () => (await import("./bulk.js")).run },
  { id: "writes", load: async () => (await import("./writes.js")).run },
  { id: "drain", load: async () => (await import("./drain.js")).run },
  { id: "idle", load: async () => (await import("./idle.js")).run },
];
