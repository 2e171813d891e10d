// Reading the metric names out of PromQL, for the test that holds the shipped dashboard and
// alert rules to what Herald exports. Not a PromQL parser: it drops what cannot be a metric
// name (strings, label matchers, ranges, grouping clauses, numbers, Grafana variables,
// function calls and keywords) and keeps the identifiers left, which is exact for the
// expressions Herald ships (every one is also parsed by Prometheus in the same test).

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"]);

/** The metric names `expr` selects, each once, in order of appearance. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings (label values, label_replace's arguments)
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\$\{[^}]*\}|\$\w+/g, " ") // Grafana variables
    .replace(/\boffset\s+-?\w+/g, " ")
    .replace(/(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\w*/g, " "); // numbers and durations
  const names: string[] = [];
  for (const m of bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || KEYWORDS.has(name!) || names.includes(name!)) continue;
    names.push(name!);
  }
  return names;
}

/** Every `expr:` of a Prometheus rules file, as written (block scalars joined into one line). */
export function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    const rest = m[2]!.trim();
    if (!/^[|>][-+]?$/.test(rest)) {
      out.push(rest.replace(/^(["'])(.*)\1$/, "$2"));
      continue;
    }
    const indent = m[1]!.length;
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === "" || lines[i + 1]!.search(/\S/) > indent)) body.push(lines[++i]!.trim());
    out.push(body.join(" ").trim());
  }
  return out;
}

interface DashboardPanel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: DashboardPanel[];
}

export interface Dashboard {
  panels: DashboardPanel[];
  templating?: { list: Array<{ name: string; type: string; query?: string | { query?: string } }> };
}

/** Every PromQL expression of a Grafana dashboard: panel targets (rows' panels too) and query variables. */
export function dashboardExpressions(dashboard: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: DashboardPanel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title ?? "?"}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : (v.query?.query ?? "");
    // label_values(expr, label) and query_result(expr) name a selector; the label is not a metric.
    const inner = /^\s*(?:label_values|query_result)\((.*?)(?:,\s*\w+)?\)\s*$/.exec(q)?.[1] ?? q;
    if (inner.trim()) out.push({ where: `variable $${v.name}`, expr: inner });
  }
  return out;
}

/** The family a sample name belongs to: `x_bucket`, `x_sum`, `x_count` of a histogram or summary `x`. */
export function familyOf(name: string, exported: ReadonlyMap<string, string>): string | undefined {
  if (exported.has(name)) return name;
  const base = /^(.*)_(?:bucket|sum|count)$/.exec(name)?.[1];
  const type = base ? exported.get(base) : undefined;
  if (base && (type === "histogram" || (type === "summary" && !name.endsWith("_bucket")))) return base;
  return undefined;
}
