import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** A child process started for a benchmark, stopped with SIGTERM. */
export interface Child {
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Spawns `node args...` and resolves once a stdout line matches `ready`. */
export function startChild(args: string[], env: Record<string, string>, ready: RegExp, timeoutMs = 60_000): Promise<Child & { line: string }> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} not ready in ${timeoutMs} ms:\n${tail.join("\n")}`)), timeoutMs);
    const lines = createInterface({ input: proc.stdout });
    createInterface({ input: proc.stderr }).on("line", (l) => tail.push(l));
    lines.on("line", (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (ready.test(line)) {
        clearTimeout(timer);
        resolve({
          proc,
          line,
          stop: () =>
            new Promise<void>((done) => {
              if (proc.exitCode !== null) return done();
              proc.once("exit", () => done());
              proc.kill("SIGTERM");
              setTimeout(() => proc.kill("SIGKILL"), 15_000).unref();
            }),
        });
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")} exited ${code}:\n${tail.join("\n")}`));
    });
  });
}
