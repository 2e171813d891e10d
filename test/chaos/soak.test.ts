import { afterAll, describe, expect, it } from "vitest";
import { formatReport } from "../../chaos/report.js";
import { SHORT_PLAN } from "../../chaos/faults.js";
import { FAULT_ENV, runSoak, type SoakResult } from "../../chaos/soak.js";
import { stopAll } from "../support/processes.js";

// The chaos soak's short form (`npm run chaos -- --short` is the same run): every role as its
// own process on a private broker and redis-server, PostgreSQL behind a proxy; one worker, the
// API, the relay and the scheduler SIGKILLed, the broker restarted, Redis stopped, PostgreSQL
// refused and then blackholed, while clients keep sending and retry under the same idempotency
// key. Asserted: the proof (0 lost, 0 stuck, duplicates only under one token, 0 INTERNAL, no
// refusal, no role exiting by itself) and that the faults were felt (clients saw UNAVAILABLE,
// processes died of SIGKILL). Never the timings: they are printed with the report.

afterAll(async () => {
  await stopAll("SIGKILL", 5000);
});

describe("chaos soak, short form", () => {
  it("loses nothing, leaves nothing stuck and duplicates only under one token", { timeout: 900_000 }, async () => {
    const log: string[] = [];
    const result: SoakResult = await runSoak({
      plan: SHORT_PLAN,
      ratePerSecond: 10,
      env: FAULT_ENV,
      terminalTimeoutMs: 240_000,
      log: (line) => log.push(`${new Date().toISOString()} ${line}`),
    });
    const report = formatReport(result);
    console.log(`${log.join("\n")}\n${report}`);

    const { proof } = result;
    expect(proof.lost, report).toEqual({
      okWithoutRow: { count: 0, sample: [] },
      notSent: { count: 0, sample: [] },
      sentNeverReceived: { count: 0, sample: [] },
      answeredOtherRow: { count: 0, sample: [] },
    });
    expect(proof.stuck, report).toEqual({ count: 0, sample: [] });
    expect(proof.duplicates.keysWithSeveralRows, report).toEqual({ count: 0, sample: [] });
    expect(proof.duplicates.unknownTokens, report).toEqual({ count: 0, sample: [] });
    expect(proof.duplicates.requestsWithoutToken, report).toBe(0);
    expect(proof.internal, report).toBe(0);
    expect(proof.refused, report).toEqual({});
    expect(proof.pending, report).toBe(0);
    expect(result.crashes.map((c) => c.name), report).toEqual([]);
    expect(proof.passed, report).toBe(true);
    // Every request answered OK reached the provider as a row that ended SENT: the proof above
    // covered something, and the faults were felt: the partition answered clients UNAVAILABLE.
    expect(proof.answeredOk, report).toBeGreaterThan(0);
    expect(proof.statuses, report).toEqual({ SENT: proof.rows });
    expect(result.figures.answers.UNAVAILABLE ?? 0, report).toBeGreaterThan(0);
    expect(result.figures.faults.map((f) => f.fault), report).toEqual([
      "SIGKILL worker-1",
      "SIGKILL server",
      "SIGKILL relay",
      "SIGKILL scheduler",
      "broker down",
      "redis down",
      "postgresql refused",
      "postgresql blackholed",
    ]);
  });
});
