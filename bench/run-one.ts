import { randomBytes } from "node:crypto";
import type { Scenario } from "./lib/result.js";

// Runs one scenario and prints its ScenarioResult as JSON, progress on stderr: for developing a
// scenario without the suite runner (bench/run.ts).
// Usage: node dist/bench/run-one.js <scenario> [--quick]   e.g. node dist/bench/run-one.js alternatives --quick

const name = process.argv[2];
if (!name || !/^[a-z0-9-]+$/.test(name)) {
  console.error("usage: node dist/bench/run-one.js <scenario> [--quick]");
  process.exitCode = 2;
} else {
  const { run } = (await import(`./scenarios/${name}.js`)) as { run: Scenario };
  const started = performance.now();
  const result = await run({
    quick: process.argv.includes("--quick"),
    runId: `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`,
    progress: { step: (text) => console.error(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${text}`) },
  });
  console.log(JSON.stringify(result, null, 2));
  console.error(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
