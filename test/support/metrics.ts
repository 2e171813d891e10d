// Reads a Prometheus text exposition (a real GET /metrics) into values tests can compare: a
// scrape before and after a known workload, and the difference of one series.

export interface Scrape {
  /** `# TYPE` of each metric family. */
  types: Map<string, string>;
  /** Sample value by series: `name{a="1",b="2"}` with labels sorted by name, `name` without labels. */
  samples: Map<string, number>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Scrape {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      types.set(name!, type!);
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = Object.fromEntries([...(m[2] ?? "").matchAll(LABEL)].map((l) => [l[1]!, l[2]!]));
    samples.set(seriesKey(m[1]!, labels), Number(m[3]));
  }
  return { types, samples };
}

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? name : `${name}{${keys.map((k) => `${k}="${labels[k]}"`).join(",")}}`;
}

/** GET /metrics on `baseUrl`, parsed. */
export async function scrape(baseUrl: string): Promise<Scrape> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** A series' value in a scrape; 0 when the series is absent (a counter not yet incremented). */
export function valueOf(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return s.samples.get(seriesKey(name, labels)) ?? 0;
}

/** How much a series rose between two scrapes. */
export function rise(before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}): number {
  return valueOf(after, name, labels) - valueOf(before, name, labels);
}
