import { readdir, readFile } from "node:fs/promises";

// Where a run's CPU went, machine-wide, from /proc: every process's user + system time,
// grouped by who it is (a named pid, or PostgreSQL, Kafka, h2load, Redis by command name).
// Divided by the requests served, it gives CPU per request per part, which a throughput
// target can be checked against: on 2 cores, N requests/s leave 2000/N ms of CPU each.

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux this runs on

/** Command names (/proc/<pid>/comm, 15 characters at most) of the parts that are not ours. */
const BY_COMMAND: Record<string, string> = { postgres: "postgresql", java: "kafka", h2load: "h2load", "redis-server": "redis" };

export interface CpuSnapshot {
  /** Machine-wide busy CPU seconds (all cores, /proc/stat). */
  busy: number;
  /** CPU seconds by pid, with the command name. */
  byPid: Map<number, { comm: string; seconds: number }>;
}

export async function cpuSnapshot(): Promise<CpuSnapshot> {
  const stat = await readFile("/proc/stat", "utf8");
  // cpu user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
  const [, ...fields] = stat.slice(0, stat.indexOf("\n")).trim().split(/\s+/);
  const ticks = fields.map(Number);
  const busy = (ticks.reduce((a, b) => a + b, 0) - (ticks[3] ?? 0) - (ticks[4] ?? 0)) / TICKS_PER_SECOND;
  const byPid = new Map<number, { comm: string; seconds: number }>();
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  await Promise.all(
    pids.map(async (name) => {
      const cpu = await processCpu(Number(name));
      // Gone between readdir and read: its time is lost with it, as it would be anyway.
      if (cpu) byPid.set(Number(name), cpu);
    }),
  );
  return { busy, byPid };
}

/** A process's command name and user + system CPU seconds so far; undefined once it is gone. */
export async function processCpu(pid: number): Promise<{ comm: string; seconds: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { comm, seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds spent between two snapshots, by part: `named` pids under their names, the known
 * commands under theirs, everything else as "other". Processes that started in between count
 * from zero; those that ended in between are missing (short-lived helpers only).
 */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot, named: Record<string, number | undefined>): { busy: number; parts: Record<string, number> } {
  const names = new Map<number, string>();
  for (const [name, pid] of Object.entries(named)) if (pid !== undefined) names.set(pid, name);
  const parts: Record<string, number> = {};
  for (const [pid, { comm, seconds }] of after.byPid) {
    const spent = seconds - (before.byPid.get(pid)?.seconds ?? 0);
    if (spent <= 0) continue;
    const part = names.get(pid) ?? BY_COMMAND[comm] ?? "other";
    parts[part] = (parts[part] ?? 0) + spent;
  }
  return { busy: after.busy - before.busy, parts };
}

/** Runs `work` and returns its result with the CPU it cost, by part. */
export async function withCpu<T>(named: Record<string, number | undefined>, work: () => Promise<T>): Promise<{ result: T; cpu: { busy: number; parts: Record<string, number> } }> {
  const before = await cpuSnapshot();
  const result = await work();
  return { result, cpu: cpuBetween(before, await cpuSnapshot(), named) };
}

/** CPU spent on `calls` calls (requests, notifications): machine-wide and by part. */
export interface CpuUse {
  busy: number;
  parts: Record<string, number>;
  calls: number;
}

/** Milliseconds of CPU per call. */
export const perCall = (seconds: number, calls: number) => (calls > 0 ? (seconds * 1000) / calls : 0);
export const ms3 = (x: number) => x.toFixed(3);

/** Two report columns: machine CPU per call, and its split by part (largest first). */
export const cpuExtra = (u: CpuUse, what: string): Record<string, string> => ({
  [`CPU ms/${what} (machine)`]: ms3(perCall(u.busy, u.calls)),
  [`CPU ms/${what} by part`]: Object.entries(u.parts)
    .filter(([, seconds]) => perCall(seconds, u.calls) >= 0.001)
    .sort((a, b) => b[1] - a[1])
    .map(([part, seconds]) => `${part} ${ms3(perCall(seconds, u.calls))}`)
    .join(" · "),
});
