import { processCpu } from "../lib/machine-cpu.js";

// CPU time of our own processes (Linux /proc), to set beside throughput: on a shared machine the
// CPU a system spends per notification moves far less than its requests/s do.

/** User + system CPU seconds a process has used so far; 0 once it is gone. */
export async function cpuSeconds(pid: number): Promise<number> {
  return (await processCpu(pid))?.seconds ?? 0;
}

/** CPU seconds of each named process. */
export async function cpuByProcess(pids: Record<string, number>): Promise<Record<string, number>> {
  return Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await cpuSeconds(pid)] as const)));
}
