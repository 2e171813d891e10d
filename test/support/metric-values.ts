import type { Registry } from "prom-client";

/**
 * The value of one series of `registry`, summed over the series whose labels include `labels`
 * (all of them when none is given). Reading runs the metric's collect(), as a scrape does. For a
 * histogram, name the `_count`, `_sum` or `_bucket` series.
 */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name) ?? registry.getSingleMetric(name.replace(/_(count|sum|bucket)$/, ""));
  if (!metric) throw new Error(`no metric ${name} in the registry`);
  const { name: base, values } = await metric.get();
  let sum = 0;
  for (const v of values as Array<(typeof values)[number] & { metricName?: string }>) {
    // Histograms name each series (`_bucket`, `_sum`, `_count`); counters and gauges do not.
    if ((v.metricName ?? base) !== name) continue;
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
  }
  return sum;
}
