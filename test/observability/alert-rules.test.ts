import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO, runCommand } from "../support/processes.js";
import { PROMTOOL } from "../support/prometheus.js";

// The shipped alert rules (deploy/prometheus/herald-rules.yml) must load in Prometheus and pass
// their promtool unit tests (deploy/prometheus/tests/*.yml), run here so CI runs them. Each
// alert must be shown firing and not firing there.

const RULES = "deploy/prometheus/herald-rules.yml";
const TESTS = "deploy/prometheus/tests";

async function alertNames(): Promise<string[]> {
  const text = await readFile(join(REPO, RULES), "utf8");
  return [...text.matchAll(/^\s*- alert:\s*(\S+)\s*$/gm)].map((m) => m[1]!);
}

async function testFiles(): Promise<string[]> {
  return (await readdir(join(REPO, TESTS))).filter((f) => f.endsWith(".yml")).sort().map((f) => join(TESTS, f));
}

describe("alert rules", () => {
  it("load: promtool check rules finds every alert", async () => {
    const alerts = await alertNames();
    expect(alerts).toEqual([
      "HeraldConsumerLagHigh",
      "HeraldConsumerLagUnreadable",
      "HeraldOutboxStuck",
      "HeraldSchedulerLate",
      "HeraldDeadLettersRising",
      "HeraldProviderErrorRatio",
      "HeraldProviderCircuitOpen",
      "HeraldChannelCircuitsAllOpen",
      "HeraldChannelStalled",
      "HeraldTargetDown",
    ]);
    const run = await runCommand(PROMTOOL, ["check", "rules", RULES]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it("pass their unit tests: promtool test rules, every file", async () => {
    const files = await testFiles();
    expect(files.length).toBeGreaterThan(0);
    const run = await runCommand(PROMTOOL, ["test", "rules", ...files], { timeoutMs: 120_000 });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    for (const f of files) expect(run.stdout).toMatch(new RegExp(`Unit Testing:\\s+${f.replace(/[.]/g, "\\.")}\\s+SUCCESS`));
    expect(run.stdout + run.stderr).not.toContain("FAILED");
  });

  it("are each tested firing and not firing", async () => {
    const cases = new Map<string, { fires: number; silent: number }>();
    for (const f of await testFiles()) {
      const text = await readFile(join(REPO, f), "utf8");
      for (const m of text.matchAll(/alertname:\s*(\S+)\s*\n\s*exp_alerts:(\s*\[\])?/g)) {
        const c = cases.get(m[1]!) ?? { fires: 0, silent: 0 };
        if (m[2]) c.silent++;
        else c.fires++;
        cases.set(m[1]!, c);
      }
    }
    for (const alert of await alertNames()) {
      expect(cases.get(alert)?.fires, `${alert} firing`).toBeGreaterThan(0);
      expect(cases.get(alert)?.silent, `${alert} not firing`).toBeGreaterThan(0);
    }
  });

  it("would fail this test if an expectation did not hold (promtool exits non-zero)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "herald-rules-"));
    try {
      const wrong = join(dir, "wrong.yml");
      // The target is up throughout, yet the test expects it down.
      await writeFile(
        wrong,
        [
          "rule_files:",
          `  - ${join(REPO, RULES)}`,
          "evaluation_interval: 1m",
          "tests:",
          "  - interval: 1m",
          "    input_series:",
          `      - series: 'up{job="herald-api",instance="a:8080"}'`,
          `        values: "1x10"`,
          "    alert_rule_test:",
          "      - eval_time: 5m",
          "        alertname: HeraldTargetDown",
          "        exp_alerts:",
          "          - exp_labels: { severity: critical, job: herald-api, instance: a:8080 }",
          "",
        ].join("\n"),
      );
      const run = await runCommand(PROMTOOL, ["test", "rules", wrong]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("FAILED");
      expect(run.stderr).toContain("alertname: HeraldTargetDown, time: 5m");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
