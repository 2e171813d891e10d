import type { SoakResult } from "./soak.js";

// The soak's result for a person: the proof (what must be zero), the figures against the
// issue's targets, per phase and per fault. Plain text tables, as the bench's summaries are.

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join("\n");
}

const s = (ms: number | null) => (ms === null ? "-" : `${(ms / 1000).toFixed(2)} s`);

export function formatReport(r: SoakResult): string {
  const p = r.proof;
  const lost = p.lost.okWithoutRow.count + p.lost.notSent.count + p.lost.sentNeverReceived.count + p.lost.answeredOtherRow.count;
  const badDuplicates = p.duplicates.keysWithSeveralRows.count + p.duplicates.unknownTokens.count + p.duplicates.requestsWithoutToken;
  const refused = Object.values(p.refused).reduce((a, b) => a + b, 0);
  const proof = table(
    ["check", "result", "detail"],
    [
      ["lost", lost, `OK without row ${p.lost.okWithoutRow.count}, not SENT ${p.lost.notSent.count}, SENT never received ${p.lost.sentNeverReceived.count}, answered another row ${p.lost.answeredOtherRow.count}`],
      ["stuck", p.stuck.count, "rows not terminal at the end of the wait"],
      ["bad duplicates", badDuplicates, `keys with several rows ${p.duplicates.keysWithSeveralRows.count}, unknown tokens ${p.duplicates.unknownTokens.count}, requests without token ${p.duplicates.requestsWithoutToken}`],
      ["INTERNAL", p.internal, "answers seen by clients"],
      ["refused", refused, JSON.stringify(p.refused)],
      ["pending", p.pending, "requests still unanswered when the load stopped"],
    ],
  );
  const facts = [
    `requests ${p.requests} (answered OK ${p.answeredOk}), rows ${p.rows} ${JSON.stringify(p.statuses)}, stored without an OK answer ${p.storedWithoutOk}`,
    `re-sent under the same token: ${p.duplicates.resentRequests} request(s) for ${p.duplicates.resentTokens} notification(s); Schedule retries after their own time: ${p.expiredSchedules}`,
    `client answers ${JSON.stringify(r.figures.answers)}; most attempts for one request ${r.figures.mostAttempts}`,
  ];
  const targets = table(["figure", "target", "measured", "met"], r.figures.targets.map((t) => [t.what, t.target, t.measured, t.met ? "yes" : "NO"]));
  const phases = table(["phase", "length", "longest stall", "stall began at"], r.figures.phases.map((f) => [f.phase, `${f.seconds} s`, s(f.longestStallMs), `${f.stallBeganAt} s`]));
  const faults = table(
    ["at", "fault", "held", "delivery resumed after", "first UNAVAILABLE"],
    r.figures.faults.map((f) => [`${f.at} s`, f.fault, s(f.heldMs), s(f.deliveryResumedMs), s(f.firstUnavailableMs)]),
  );
  const crashes = r.crashes.map((c) => `CRASHED (not killed by the soak): ${c.name} ${c.exit}\n${c.tail}`);
  return [
    `chaos soak: ${p.passed ? "PASSED" : "FAILED"}`,
    "",
    proof,
    "",
    ...facts,
    "",
    targets,
    "",
    phases,
    "",
    faults,
    `all terminal ${s(r.figures.allTerminalMs)} after the last fault ended`,
    ...crashes,
  ].join("\n");
}
