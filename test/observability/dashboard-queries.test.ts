import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHerald, type TestHerald } from "../support/herald.js";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.js";
import { REPO } from "../support/processes.js";
import { dashboardExpressions, familyOf, metricNames, ruleExpressions, type Dashboard } from "../support/promql.js";
import { instantProvider } from "../support/watch.js";

// Every query of the shipped Grafana dashboard and alert rules must name metrics Herald
// exports. What Herald exports is read from a whole Herald (every role in one process, one
// registry, as `herald dev` runs), never from a list kept by hand; every expression must also
// parse in the real Prometheus the deployment would run.

const dashboard = JSON.parse(readFileSync(join(REPO, "deploy/grafana/herald-dashboard.json"), "utf8")) as Dashboard & Record<string, unknown>;
const rules = readFileSync(join(REPO, "deploy/prometheus/herald-rules.yml"), "utf8");
const expressions = [...dashboardExpressions(dashboard), ...ruleExpressions(rules).map((expr) => ({ where: "herald-rules.yml", expr }))];
const used = [...new Set(expressions.flatMap((e) => metricNames(e.expr)))].sort();
// Series Prometheus makes itself for every target; no exporter has them.
const MADE_BY_PROMETHEUS = new Set(["up"]);

let herald: TestHerald;
let exported: Map<string, string>;

beforeAll(async () => {
  const providers = { email: instantProvider(), sms: instantProvider(), push: instantProvider(), webhook: instantProvider() };
  herald = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers });
  exported = new Map((await herald.rt.metrics.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
}, 120_000);
afterAll(async () => {
  await herald?.stop();
}, 120_000);

describe("the Grafana dashboard", () => {
  it("imports with the data source as a variable: every panel and target asks ${DS_PROMETHEUS}", () => {
    const ds = dashboard.templating?.list.find((v) => v.name === "DS_PROMETHEUS");
    expect(ds).toMatchObject({ type: "datasource", query: "prometheus" });
    expect(dashboard).toMatchObject({ uid: "herald-overview", title: "Herald", id: null });
    const panels = (dashboard.panels as Array<Record<string, unknown>>).filter((p) => p.type !== "row");
    const ids = (dashboard.panels as Array<{ id: number }>).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.datasource, String(p.title)).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
      for (const t of p.targets as Array<Record<string, unknown>>) expect(t.datasource, String(p.title)).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" });
    }
    // What the issue asks the dashboard to show, by the metric it reads.
    for (const m of [
      "herald_kafka_consumer_lag",
      "herald_accepted_total",
      "herald_relay_published_total",
      "herald_worker_records_total",
      "herald_delivery_e2e_seconds_bucket",
      "herald_rpc_duration_seconds_bucket",
      "herald_outbox_oldest_age_seconds",
      "herald_scheduler_due",
      "herald_dead_letters",
      "herald_provider_request_duration_seconds_bucket",
      "herald_rpc_requests_total",
      "nodejs_eventloop_lag_p99_seconds",
    ]) {
      expect(used, m).toContain(m);
    }
    for (const q of ["0.5", "0.99", "0.999"]) {
      for (const h of ["herald_delivery_e2e_seconds", "herald_rpc_duration_seconds"]) {
        expect(expressions.some((e) => e.expr.startsWith(`histogram_quantile(${q}, sum by (le) (rate(${h}_bucket`)), `p${q} of ${h}`).toBe(true);
      }
    }
  });
});

describe("every dashboard and alert query", () => {
  let prometheus: TestPrometheus;
  beforeAll(async () => {
    prometheus = await startPrometheus([]);
  }, 120_000);
  afterAll(async () => {
    await prometheus?.stop();
  });

  it("parses in Prometheus 2.42 (Grafana's variables filled in)", async () => {
    expect(expressions.length).toBeGreaterThan(50);
    const refused: string[] = [];
    for (const { where, expr } of expressions) {
      const filled = expr.replaceAll("$__rate_interval", "1m").replaceAll("$channel", ".+");
      const res = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(filled)}`);
      const body = (await res.json()) as { status: string; error?: string };
      if (body.status !== "success") refused.push(`${where}: ${expr}: ${body.error}`);
    }
    expect(refused).toEqual([]);
  });
});

describe("every metric the dashboard and the alert rules use is exported by Herald", () => {
  it("found the expressions and the names in them", () => {
    expect(ruleExpressions(rules)).toHaveLength([...rules.matchAll(/^\s*- alert:/gm)].length);
    expect(used.length).toBeGreaterThan(30);
  });

  it.each(used)("%s", (name) => {
    if (MADE_BY_PROMETHEUS.has(name)) return;
    const family = familyOf(name, exported);
    const users = new Set(expressions.filter((e) => metricNames(e.expr).includes(name)).map((e) => e.where));
    expect(family, `${name} is used by ${[...users].join(", ")} and not exported`).toBeDefined();
  });
});
