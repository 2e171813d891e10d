// What happened when: the soak's phases (windows of time) and the faults inside them, in
// milliseconds since the epoch. The figures are computed from it and from the stand-in's log
// afterwards, so measuring never slows the faults down.

export interface Window {
  name: string;
  startedAt: number;
  /** Undefined while it lasts. */
  endedAt?: number;
}

export interface Fault extends Window {
  phase: string;
}

export interface Timeline {
  /** When the timeline began: the origin of every relative time in the report. */
  t0: number;
  phases: Window[];
  faults: Fault[];
  /** Opens a phase (closing the previous one). */
  phase(name: string): void;
  /** Runs `hold` as fault `name` of the current phase: its window is the call's. */
  fault<T>(name: string, hold: () => Promise<T>): Promise<T>;
  /** Closes the open phase. */
  close(): void;
  /** The end of the last fault, the instant recovery is measured from. */
  lastFaultEnd(): number | undefined;
}

export function createTimeline(log: (line: string) => void): Timeline {
  const phases: Window[] = [];
  const faults: Fault[] = [];
  const t0 = Date.now();
  const at = (t: number) => `${((t - t0) / 1000).toFixed(1).padStart(6)} s`;
  const close = () => {
    const open = phases.at(-1);
    if (open && open.endedAt === undefined) open.endedAt = Date.now();
  };
  return {
    t0,
    phases,
    faults,
    phase(name) {
      close();
      phases.push({ name, startedAt: Date.now() });
      log(`${at(Date.now())}  phase ${name}`);
    },
    async fault(name, hold) {
      const fault: Fault = { name, phase: phases.at(-1)?.name ?? "", startedAt: Date.now() };
      faults.push(fault);
      log(`${at(fault.startedAt)}  fault ${name}`);
      try {
        return await hold();
      } finally {
        fault.endedAt = Date.now();
        log(`${at(fault.endedAt)}  fault ${name} over (${((fault.endedAt - fault.startedAt) / 1000).toFixed(1)} s)`);
      }
    },
    close,
    lastFaultEnd: () => faults.reduce<number | undefined>((last, f) => Math.max(last ?? 0, f.endedAt ?? 0), undefined),
  };
}
