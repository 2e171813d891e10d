import { readFile } from "node:fs/promises";

// CPU time of our own processes (Linux /proc), to set beside throughput: on a shared machine the
// CPU a system spends per notification moves far less than its requests/s do.

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux this runs on

/** User + system CPU seconds a process has used so far; 0 once it is gone. */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name (which may hold spaces): utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU seconds of each named process. */
export async function cpuByProcess(pids: Record<string, number>): Promise<Record<string, number>> {
  return Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await cpuSeconds(pid)] as const)));
}
