import { Code, ConnectError, createHeraldClient, type HeraldClient } from "../src/client/index.js";
import { Channel } from "../gen/herald/v1/notification_pb.js";

// A well-behaved client beside the attacks: a Create every `everyMs`, each with a deadline. Its
// latencies say whether the attacks slowed Herald for everyone else; a call that ran into its
// deadline is a hang of the service.

export interface ProbeResult {
  calls: number;
  ok: number;
  /** Calls that failed, by code. */
  failed: Record<string, number>;
  latenciesMs: number[];
}

export function startProbe(opts: { address: string; apiKey: string; everyMs?: number; deadlineMs?: number }): { stop(): Promise<ProbeResult> } {
  const client: HeraldClient = createHeraldClient({ address: opts.address, apiKey: opts.apiKey });
  const result: ProbeResult = { calls: 0, ok: 0, failed: {}, latenciesMs: [] };
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const started = performance.now();
    result.calls++;
    const call = client
      .create(
        {
          notification: {
            channel: Channel.SMS,
            recipient: { userId: "probe", address: { case: "phone", value: "+14155550100" } },
            body: { case: "content", value: { text: "probe" } },
          },
        },
        { timeoutMs: opts.deadlineMs ?? 5000 },
      )
      .then(
        () => {
          result.ok++;
          result.latenciesMs.push(performance.now() - started);
        },
        (err: unknown) => {
          const code = Code[ConnectError.from(err).code] ?? "Unknown";
          result.failed[code] = (result.failed[code] ?? 0) + 1;
        },
      )
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  }, opts.everyMs ?? 100);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      client.close();
      return result;
    },
  };
}
