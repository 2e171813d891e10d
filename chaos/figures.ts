import type { Attempt, Load } from "./load.js";
import { firstFreshReceipt, longestGap, type Receipt } from "./receipts.js";
import type { Timeline } from "./timeline.js";

// The soak's figures: how long delivery stood still, how soon it came back after each fault,
// how soon clients were told UNAVAILABLE in a partition, how soon everything was terminal. They
// are reported against the targets, never asserted (a busy machine makes them worse
// without anything being wrong).

export interface PhaseFigure {
  phase: string;
  seconds: number;
  /** The longest time in the phase without a provider receipt, and when it began (s from the timeline's start, as in the progress lines). */
  longestStallMs: number;
  stallBeganAt: number;
}

export interface FaultFigure {
  fault: string;
  phase: string;
  /** s from the timeline's start. */
  at: number;
  heldMs: number;
  /** From the fault's end to the first receipt of a notification accepted since the fault began. */
  deliveryResumedMs: number | null;
  /** From the fault's start to the first UNAVAILABLE answered to a client while it lasted (null: none). */
  firstUnavailableMs: number | null;
}

export interface Target {
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface Figures {
  phases: PhaseFigure[];
  faults: FaultFigure[];
  /** From the last fault's end until every notification was terminal (null: never, within the wait). */
  allTerminalMs: number | null;
  answers: Record<string, number>;
  mostAttempts: number;
  targets: Target[];
}

export function computeFigures(timeline: Timeline, load: Load, receipts: readonly Receipt[], allTerminalAt: number | null): Figures {
  const rel = (t: number) => Math.round((t - timeline.t0) / 100) / 10;
  const phases = timeline.phases.map((p): PhaseFigure => {
    const end = p.endedAt ?? Date.now();
    const gap = longestGap(receipts, p.startedAt, end);
    return { phase: p.name, seconds: Math.round((end - p.startedAt) / 100) / 10, longestStallMs: gap.ms, stallBeganAt: rel(gap.at) };
  });
  const faults = timeline.faults.map((f): FaultFigure => {
    const end = f.endedAt ?? Date.now();
    const resumed = firstFreshReceipt(receipts, end, f.startedAt);
    return {
      fault: f.name,
      phase: f.phase,
      at: rel(f.startedAt),
      heldMs: end - f.startedAt,
      deliveryResumedMs: resumed ? resumed.at - end : null,
      firstUnavailableMs: firstAnswer(load.attempts, "UNAVAILABLE", f.startedAt, end),
    };
  });
  const lastEnd = timeline.lastFaultEnd();
  const allTerminalMs = allTerminalAt !== null && lastEnd !== undefined ? allTerminalAt - lastEnd : null;
  const answers: Record<string, number> = {};
  for (const a of load.attempts) answers[a.code] = (answers[a.code] ?? 0) + 1;
  const mostAttempts = Math.max(0, ...[...load.requests.values()].map((r) => r.attempts));

  const stall = phases.find((p) => p.phase === "worker kills");
  const broker = faults.find((f) => f.fault === "broker down");
  const blackhole = faults.find((f) => f.fault === "postgresql blackholed");
  const seconds = (ms: number | null | undefined) => (ms === null || ms === undefined ? "never" : `${(ms / 1000).toFixed(2)} s`);
  const within = (ms: number | null | undefined, limit: number) => ms !== null && ms !== undefined && ms <= limit;
  const targets: Target[] = [
    { what: "longest delivery stall, one of two workers SIGKILLed every 5 s", target: "≤ 15 s", measured: seconds(stall?.longestStallMs), met: within(stall?.longestStallMs, 15_000) },
    { what: "delivery resumed after the broker restart (from ready)", target: "≤ 10 s", measured: seconds(broker?.deliveryResumedMs), met: within(broker?.deliveryResumedMs, 10_000) },
    { what: "first UNAVAILABLE after the PostgreSQL blackhole began", target: "≤ 2 s", measured: seconds(blackhole?.firstUnavailableMs), met: within(blackhole?.firstUnavailableMs, 2000) },
    { what: "all terminal after the last fault ended", target: "≤ 60 s", measured: seconds(allTerminalMs), met: within(allTerminalMs, 60_000) },
    { what: "INTERNAL answers seen by clients", target: "0", measured: String(answers.INTERNAL ?? 0), met: (answers.INTERNAL ?? 0) === 0 },
  ];
  return { phases, faults, allTerminalMs, answers, mostAttempts, targets };
}

/** Ms from `since` to the first attempt answered `code` in [since, until] (null: none). */
function firstAnswer(attempts: readonly Attempt[], code: string, since: number, until: number): number | null {
  let first: number | null = null;
  for (const a of attempts) {
    if (a.code === code && a.answeredAt >= since && a.answeredAt <= until && (first === null || a.answeredAt < first)) first = a.answeredAt;
  }
  return first === null ? null : first - since;
}
