import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// Herald as real processes: `node dist/src/cli.js <role>` (built by `npm run build`), each with
// its own environment, its output collected, stopped by signal. Every child gets its own process
// group, so a stop or kill reaches whatever it started too (`node_modules/.bin/buf` is a Node
// wrapper around a Go binary), and children still running when the test process exits are
// killed: a failed test never leaves a listener behind holding a port or a database.

const HERE = dirname(fileURLToPath(import.meta.url));
// Two levels up from test/support/; three from dist/test/support/, where `npm run build` puts
// this file for the chaos soak (`node dist/chaos/run.js`), which reuses it outside vitest.
export const REPO = resolve(HERE, basename(resolve(HERE, "../..")) === "dist" ? "../../.." : "../..");
export const CLI = join(REPO, "dist/src/cli.js");
export const BUF = join(REPO, "node_modules/.bin/buf");

export type Role = "server" | "relay" | "scheduler" | "worker" | "dev";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One pino line of a Herald process (`LOG_LEVEL=info`, JSON on stdout). */
export interface LogLine {
  level: number;
  msg: string;
  role?: string;
  [field: string]: unknown;
}

export interface ChildHandle {
  readonly name: string;
  readonly pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** Set once the process has exited. */
  exit(): Exit | undefined;
  /**
   * Sends `signal` to the process group and waits for the exit; after `timeoutMs` the group is
   * SIGKILLed, so the result then shows signal SIGKILL. Already exited: returns that exit.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

export interface HeraldProcess extends ChildHandle {
  readonly role: Role;
  /** The JSON log lines of stdout so far (other lines are skipped). */
  logs(): LogLine[];
  /**
   * Resolves with the first log line (seen before or after the call) whose msg is `match`, or
   * for which `match` holds; rejects on timeout or when the process exits first, quoting its output.
   */
  waitForLog(match: string | ((line: LogLine) => boolean), timeoutMs?: number): Promise<LogLine>;
}

const live = new Set<ChildHandle>();

// Last resort (a test that threw before its teardown, a timed-out hook): the test process is
// leaving, so every group still running goes with it. Only synchronous work is possible here.
process.once("exit", () => {
  for (const child of live) killGroup(child.pid, "SIGKILL");
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

function track(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): ChildHandle & { onStdout: (fn: () => void) => () => void } {
  const child = spawn(command, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  if (child.pid === undefined) throw new Error(`${name}: spawn ${command} failed`);
  const pid = child.pid;
  let out = "";
  let err = "";
  let exit: Exit | undefined;
  const listeners = new Set<() => void>();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    listeners.forEach((fn) => fn());
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  // 'close', not 'exit': by then stdout and stderr have been read to the end.
  const exited = new Promise<Exit>((resolveExit) => {
    child.once("error", (e) => {
      err += String(e);
      exit ??= { code: null, signal: null };
      resolveExit(exit);
    });
    child.once("close", (code, signal) => {
      exit ??= { code, signal };
      resolveExit(exit);
    });
  }).finally(() => {
    live.delete(handle);
    listeners.forEach((fn) => fn());
  });
  const handle: ChildHandle & { onStdout: (fn: () => void) => () => void } = {
    name,
    pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    exit: () => exit,
    async stop(signal = "SIGTERM", timeoutMs = 20_000) {
      if (exit) return exit;
      killGroup(pid, signal);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)));
      await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (!exit) killGroup(pid, "SIGKILL");
      return exited;
    },
    onStdout(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
  live.add(handle);
  return handle;
}

function parseLogs(stdout: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of stdout.split("\n")) {
    if (!text.startsWith("{")) continue;
    try {
      const line = JSON.parse(text) as LogLine;
      if (typeof line.msg === "string") lines.push(line);
    } catch {
      // A partial last line; it is complete on the next read.
    }
  }
  return lines;
}

/** The last `n` characters of a process's output, for failure messages. */
export function outputTail(child: ChildHandle, n = 3000): string {
  return `--- stdout ---\n${child.stdout().slice(-n)}\n--- stderr ---\n${child.stderr().slice(-n)}`;
}

/**
 * Starts `herald <role> [...args]` (e.g. "worker", ["--channel", "sms"]) with exactly `env` (see
 * HeraldSite.env) on top of a scrubbed process environment.
 */
export function spawnHerald(role: Role, env: Record<string, string>, name: string = role, args: readonly string[] = []): HeraldProcess {
  const base = track(name, process.execPath, [CLI, role, ...args], { ...inheritedEnv(), ...env });
  const { onStdout, ...handle } = base;
  return {
    ...handle,
    role,
    logs: () => parseLogs(base.stdout()),
    waitForLog(match, timeoutMs = 60_000) {
      const test = typeof match === "string" ? (l: LogLine) => l.msg === match : match;
      const what = typeof match === "string" ? `"${match}"` : "a matching line";
      return new Promise<LogLine>((resolveLine, reject) => {
        const check = () => {
          const found = parseLogs(base.stdout()).find(test);
          if (found) return done(() => resolveLine(found));
          const exit = base.exit();
          if (exit) done(() => reject(new Error(`${name} exited (${JSON.stringify(exit)}) before logging ${what}\n${outputTail(base)}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`${name} did not log ${what} within ${timeoutMs} ms\n${outputTail(base)}`))),
          timeoutMs,
        );
        const off = onStdout(check);
        function done(settle: () => void) {
          clearTimeout(timer);
          off();
          settle();
        }
        check();
      });
    },
  };
}

export interface RunResult extends Exit {
  stdout: string;
  stderr: string;
  /** The command had not exited after timeoutMs and was killed. */
  timedOut: boolean;
  ms: number;
}

/**
 * Runs a short-lived command to its end and returns its exit and output; one not done within
 * `timeoutMs` is killed (with everything it started) and reported with `timedOut`.
 */
export async function runCommand(
  command: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; name?: string } = {},
): Promise<RunResult> {
  const started = Date.now();
  const child = track(opts.name ?? command, command, args, { ...inheritedEnv(), ...opts.env });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    child.exited.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(r, timeoutMs, true))),
  ]);
  clearTimeout(timer);
  const exit = timedOut ? await child.stop("SIGKILL") : await child.exited;
  return { ...exit, stdout: child.stdout(), stderr: child.stderr(), timedOut, ms: Date.now() - started };
}

/** `herald <args>` (a client command) to its end. */
export function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  return runCommand(process.execPath, [CLI, ...args], { ...opts, name: `herald ${args[0] ?? ""}` });
}

/** `herald <args>` left running (e.g. `watch`), for a test to read its output and signal it. */
export function spawnCli(args: string[], opts: { env?: Record<string, string> } = {}): ChildHandle {
  return spawnCommand(`herald ${args[0] ?? ""}`, process.execPath, [CLI, ...args], opts.env);
}

/** Any long-running command (a private redis-server, say), tracked and stopped as Herald's roles are. */
export function spawnCommand(name: string, command: string, args: readonly string[], env: Record<string, string> = {}): ChildHandle {
  const { onStdout: _onStdout, ...handle } = track(name, command, [...args], { ...inheritedEnv(), ...env });
  return handle;
}

/** Stops every child still running: `signal` first, SIGKILL for those still there after `timeoutMs`. For afterAll. */
export async function stopAll(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000): Promise<void> {
  await Promise.all([...live].map((child) => child.stop(signal, timeoutMs)));
}

/**
 * `n` distinct ports nobody holds right now: all are bound at once, then released. Another
 * process may take one before ours binds it; the role then fails to start, loudly.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const server = createServer();
      await new Promise<void>((resolveListen, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", resolveListen);
      });
      return server;
    }),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("freePorts: no port");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

// Configuration a developer's shell may carry must not leak into a test's processes; what
// says where the shared services are (KAFKA_BROKERS, REDIS_URL) is kept.
function inheritedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("HERALD_") || k === "DATABASE_URL" || k === "LOG_LEVEL" || k === "NODE_OPTIONS") continue;
    env[k] = v;
  }
  return env;
}

/** Where one test's Herald lives: its database, topic prefix, ports and API key. */
export interface HeraldSite {
  databaseUrl: string;
  /** `t<random>.` */
  prefix: string;
  tenant: string;
  apiKey: string;
  grpcPort: number;
  httpPort: number;
  grpcAddress: string;
  httpUrl: string;
  /** The environment of every role of this site; `extra` is added on top. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** The prefixed topic name, e.g. topic("herald.email"). */
  topic(logical: string): string;
}

export async function heraldSite(databaseUrl: string): Promise<HeraldSite> {
  const ports = await freePorts(2);
  const grpcPort = ports[0]!;
  const httpPort = ports[1]!;
  const prefix = `t${randomBytes(5).toString("hex")}.`;
  const tenant = "tenant-a";
  const apiKey = `key-${randomBytes(12).toString("hex")}`;
  return {
    databaseUrl,
    prefix,
    tenant,
    apiKey,
    grpcPort,
    httpPort,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    env: (extra = {}) => ({
      DATABASE_URL: databaseUrl,
      HERALD_TOPIC_PREFIX: prefix,
      HERALD_TOPIC_PARTITIONS: "3",
      HERALD_API_KEYS: `${tenant}:${apiKey}`,
      HERALD_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      HERALD_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      LOG_LEVEL: "info",
      ...extra,
    }),
    topic: (logical) => prefix + logical,
  };
}
