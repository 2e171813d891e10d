import { randomBytes } from "node:crypto";
import { access, constants, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, outputTail, spawnCommand, type ChildHandle } from "./processes.js";
import { waitFor } from "./wait.js";

// A real Prometheus server (Debian's `prometheus` package, 2.42; `.ci/run` installs it) for a
// test: its own free port, a temporary config and data directory, a job of its own, stopped and
// removed by stop(). Queried through its HTTP API as Grafana or an operator would.

export const PROMETHEUS = process.env.PROMETHEUS_BIN ?? "/usr/bin/prometheus";
export const PROMTOOL = process.env.PROMTOOL_BIN ?? "/usr/bin/promtool";

export interface TestPrometheus {
  /** http://127.0.0.1:<port> */
  url: string;
  /** The scrape job's name (unique per server). */
  job: string;
  /**
   * An instant query's single value (`sum(...)`, `up{...}`); undefined while it has no series.
   * Throws when the result has more than one series or Prometheus refuses the query.
   */
  value(expr: string): Promise<number | undefined>;
  /** The server's output, for failure messages. */
  output(): string;
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

interface QueryAnswer {
  status: "success" | "error";
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

/** Starts Prometheus scraping `targets` (host:port, path /metrics) every second; resolves once it is ready. */
export async function startPrometheus(targets: readonly string[]): Promise<TestPrometheus> {
  await access(PROMETHEUS, constants.X_OK).catch(() => {
    throw new Error(`${PROMETHEUS} not found: install Debian's prometheus package (.ci/run does), or set PROMETHEUS_BIN`);
  });
  const dir = await mkdtemp(join(tmpdir(), "herald-prometheus-"));
  const job = `herald-${randomBytes(4).toString("hex")}`;
  // The timeout may not exceed the interval; a lag read slower than a second is shared by the
  // next scrape (kafka-lag.ts), so a slow machine loses a sample, not the series.
  await writeFile(
    join(dir, "prometheus.yml"),
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "  evaluation_interval: 1s",
      "scrape_configs:",
      `  - job_name: ${job}`,
      "    static_configs:",
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}`;
  let child: ChildHandle | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await child?.stop("SIGTERM", 20_000);
      await rm(dir, { recursive: true, force: true });
    })());
  try {
    child = spawnCommand("prometheus", PROMETHEUS, [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ]);
    const started = child;
    await waitFor(
      "prometheus ready",
      async () => {
        if (started.exit()) throw new Error(`prometheus exited ${JSON.stringify(started.exit())}\n${outputTail(started)}`);
        const res = await fetch(`${url}/-/ready`).catch(() => undefined);
        return res?.ok === true;
      },
      { timeoutMs: 60_000, everyMs: 100 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const started = child;
  return {
    url,
    job,
    async value(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const answer = (await res.json()) as QueryAnswer;
      if (answer.status !== "success" || !answer.data) throw new Error(`prometheus refused ${expr}: ${answer.error ?? res.status}`);
      const { result } = answer.data;
      if (result.length > 1) throw new Error(`${expr}: ${result.length} series, expected one`);
      return result[0] ? Number(result[0].value[1]) : undefined;
    },
    output: () => outputTail(started),
    stop,
  };
}
