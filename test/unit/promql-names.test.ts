import { describe, expect, it } from "vitest";
import { dashboardExpressions, familyOf, metricNames, ruleExpressions } from "../support/promql.js";

// The extraction the dashboard-queries test relies on: a miss there would let a misspelt metric
// through, so each shape Herald's dashboard and rules use is checked here by value.

describe("metricNames", () => {
  it("keeps metric names and drops functions, labels, strings, ranges, numbers and variables", () => {
    expect(metricNames(`histogram_quantile(0.99, sum by (le, method) (rate(herald_rpc_duration_seconds_bucket{listener="grpc", code=~"ok|x"}[$__rate_interval])))`)).toEqual([
      "herald_rpc_duration_seconds_bucket",
    ]);
    expect(metricNames(`sum(rate(a_sum[5m])) / sum(rate(a_count[5m])) > 1e3`)).toEqual(["a_sum", "a_count"]);
    expect(
      metricNames(
        `(sum by (group) (max by (group, topic, partition) (herald_kafka_consumer_lag)) > 0) unless on (group) label_replace(sum by (channel) (rate(herald_deliveries_total[5m])) > 0, "group", "herald-worker-$1", "channel", "(.+)")`,
      ),
    ).toEqual(["herald_kafka_consumer_lag", "herald_deliveries_total"]);
    expect(metricNames(`up{job=~"herald.*"} == 0 or x offset 5m`)).toEqual(["up", "x"]);
    expect(metricNames(`max without (instance) (nodejs_heap_size_used_bytes) * on (job) group_left (version) herald_build_info`)).toEqual([
      "nodejs_heap_size_used_bytes",
      "herald_build_info",
    ]);
  });
});

describe("ruleExpressions", () => {
  it("reads block and one-line expr values", () => {
    const yaml = ["groups:", "  - name: g", "    rules:", "      - alert: A", "        expr: |", "          sum(a)", "            > 1", "        for: 5m", "      - alert: B", '        expr: "up == 0"', ""].join("\n");
    expect(ruleExpressions(yaml)).toEqual(["sum(a) > 1", "up == 0"]);
  });
});

describe("dashboardExpressions", () => {
  it("reads panel targets, rows' panels and query variables", () => {
    const found = dashboardExpressions({
      panels: [{ title: "p", targets: [{ expr: "a" }, {}] }, { title: "row", panels: [{ title: "q", targets: [{ expr: "b" }] }] }],
      templating: { list: [{ name: "c", type: "query", query: { query: "label_values(herald_x{a=\"b\"}, channel)" } }, { name: "d", type: "custom", query: "e,f" }] },
    });
    expect(found).toEqual([
      { where: 'panel "p"', expr: "a" },
      { where: 'panel "q"', expr: "b" },
      { where: "variable $c", expr: 'herald_x{a="b"}' },
    ]);
  });
});

describe("familyOf", () => {
  it("maps histogram samples to their family, and nothing else", () => {
    const exported = new Map([
      ["h_seconds", "histogram"],
      ["c_total", "counter"],
      ["s", "summary"],
    ]);
    expect(familyOf("h_seconds_bucket", exported)).toBe("h_seconds");
    expect(familyOf("h_seconds_count", exported)).toBe("h_seconds");
    expect(familyOf("c_total", exported)).toBe("c_total");
    expect(familyOf("c_total_sum", exported)).toBeUndefined();
    expect(familyOf("s_sum", exported)).toBe("s");
    expect(familyOf("s_bucket", exported)).toBeUndefined();
    expect(familyOf("missing", exported)).toBeUndefined();
  });
});
