import { timestampDate, type Duration } from "@bufbuild/protobuf/wkt";
import { CircuitState, type GetOverviewResponse } from "../../gen/herald/v1/operations_pb.js";
import { channelName, channelTopic } from "../kafka/topics.js";

// What `herald status` prints: one screen read top to bottom as an operator asks the questions.
// Is anything waiting in Kafka (a table per channel, the columns of `kafka-consumer-groups
// --describe`, so the numbers can be compared with it)? In the outbox, the scheduler, the dead
// letters? How fast does each channel deliver? Is a provider's circuit breaker open? Pure: the
// response in, the text out.

/** Left-aligned columns, each as wide as its widest cell, two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** 0.75 s → "750ms", 12.5 s → "12.5s", 125 s → "2m05s", 3725 s → "1h02m". */
export function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${Number(seconds.toFixed(seconds < 10 ? 2 : 1))}s`;
  const whole = Math.floor(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`;
}

function seconds(d: Duration | undefined): number {
  return d ? Number(d.seconds) + d.nanos / 1e9 : 0;
}

const rate = (perSecond: number) => perSecond.toFixed(2);

const circuitText: Record<CircuitState, string> = {
  [CircuitState.UNSPECIFIED]: "unknown",
  [CircuitState.CLOSED]: "closed",
  [CircuitState.HALF_OPEN]: "half-open",
  [CircuitState.OPEN]: "open",
};

export function formatOverview(o: GetOverviewResponse): string {
  const at = o.observeTime ? timestampDate(o.observeTime).toISOString() : "-";
  const out: string[] = [`herald status at ${at}\n`];

  if (!o.lagAvailable) out.push("\nconsumer lag: unavailable (Kafka did not answer in time)\n");
  else {
    for (const c of o.channels) {
      const header = ["GROUP", "TOPIC", "PARTITION", "LOG-END-OFFSET", "COMMITTED-OFFSET", "LAG"];
      const topic = channelTopic(c.channel);
      // A server from before priority lanes names neither: its partitions are the main lane's.
      const rows = c.partitions.map((p) => [
        p.group || c.group,
        p.topic || topic,
        String(p.partition),
        String(p.logEndOffset),
        p.committedOffset < 0n ? "-" : String(p.committedOffset),
        String(p.lag),
      ]);
      out.push(`\n${channelName(c.channel)}: lag ${c.lag}\n`);
      out.push(rows.length > 0 ? table([header, ...rows]) : `${c.group}  ${topic}: no partitions (topic not created yet)\n`);
    }
  }

  out.push(
    "\n" +
      table([
        ["outbox pending", String(o.outboxPending), `oldest ${formatSeconds(seconds(o.outboxOldestAge))}`],
        ["due, not released", String(o.dueUnreleased), `oldest ${formatSeconds(seconds(o.dueOldestAge))}`],
        ["dead letters open", String(o.deadLettersOpen), ""],
      ]),
  );

  const flow = o.channels.map((c) => [
    channelName(c.channel),
    rate(c.sentPerSecond),
    rate(c.failedPerSecond),
    c.e2eSamples > 0n ? formatSeconds(seconds(c.e2eP50)) : "-",
    c.e2eSamples > 0n ? formatSeconds(seconds(c.e2eP99)) : "-",
    String(c.e2eSamples),
  ]);
  out.push("\n" + table([["CHANNEL", "SENT/s", "FAILED/s", "E2E-P50", "E2E-P99", "SAMPLES"], ...flow]));
  out.push("(rates over the last minute, end to end over the last five, as this API instance saw them)\n");

  // Only channels with failover have breakers; a server from before them sends none.
  const circuits = o.channels.flatMap((c) =>
    c.circuits.map((k) => [
      channelName(c.channel),
      k.provider,
      circuitText[k.state] ?? "unknown",
      k.state === CircuitState.OPEN ? formatSeconds(seconds(k.retryIn)) : "-",
    ]),
  );
  if (circuits.length > 0) {
    out.push("\n" + table([["CHANNEL", "PROVIDER", "CIRCUIT", "PROBE-IN"], ...circuits]));
    out.push("(circuit breakers of the channels with failover, in order; unknown: Redis did not answer)\n");
  }
  return out.join("");
}
