import { systemClock, type Clock } from "../clock.js";

// Whether this process can serve, for every way of asking (grpc.health.v1 on the API's gRPC
// listener, /readyz on any HTTP port): dependency checks run in the background, and every
// answer comes from the last result, so a probe never waits on a dependency and stays fast
// while the database is slow. Readiness also waits for whatever holds it (a process still
// starting its roles), and ends for good at shutdown so load balancers drain the instance.

/** One dependency the process needs to serve, e.g. PostgreSQL or Kafka. */
export interface DependencyCheck {
  name: string;
  /** Resolves when healthy. Should give up when `signal` aborts (timeout or close). */
  check(signal: AbortSignal): Promise<void>;
  /**
   * Reported (in /readyz) but not part of readiness: a dependency the process can do
   * without, like Redis, whose outage only slows the rate limiter down. @defaultValue false
   */
  optional?: boolean;
}

export interface HealthOptions {
  checks: DependencyCheck[];
  /** Pause between the end of one round of checks and the start of the next. @defaultValue 2000 */
  intervalMs?: number;
  /** A check not settled by then counts as failed. @defaultValue 1500 */
  timeoutMs?: number;
  /** Time for `checkedAt`. @defaultValue the system clock */
  clock?: Clock;
  /** Told once per change of a check's state, never per round. */
  log?: { warn(obj: object, msg: string): void; info?(obj: object, msg: string): void };
}

export interface HealthReport {
  serving: boolean;
  checks: Record<string, { ok: boolean; error?: string; checkedAt?: string }>;
  /** What still holds readiness back (see hold); absent when nothing does. */
  waiting?: string[];
}

export interface HealthChecks {
  /** Ready: the first round has run, every required check passed, nothing holds it, not shutting down. */
  serving(): boolean;
  /** Snapshot for /readyz: serving, and each check's last outcome. */
  report(): HealthReport;
  /** Runs the checks once, then every intervalMs (the timer does not keep the process alive). */
  start(): Promise<void>;
  /** Runs the checks now; joins the round in flight if there is one. */
  refresh(): Promise<void>;
  /** Not ready until the returned release is called (e.g. "starting" until every role runs). */
  hold(reason: string): () => void;
  /** Not ready from now on, whatever the checks say, so load balancers drain us (SIGTERM). */
  setShuttingDown(): void;
  /** Calls `listener` after each change of `serving()` and on close; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
  /** True once close() was called. */
  readonly closed: boolean;
  /** Stops the checks and aborts those in flight. Idempotent. */
  close(): void;
}

interface CheckState {
  ok?: boolean;
  error?: string;
  checkedAt?: Date;
  /** The call not settled yet, kept past its timeout so a hung check is never started twice. */
  pending?: Promise<void>;
}

export function createHealthChecks(opts: HealthOptions): HealthChecks {
  const { checks, intervalMs = 2000, timeoutMs = 1500, clock = systemClock, log } = opts;
  if (new Set(checks.map((c) => c.name)).size !== checks.length) throw new Error("health: check names must be unique");
  if (!(intervalMs > 0) || !(timeoutMs > 0)) throw new Error("health: intervalMs and timeoutMs must be positive");
  const entries = checks.map((check): { check: DependencyCheck; state: CheckState } => ({ check, state: {} }));
  const lifetime = new AbortController();
  const listeners = new Set<() => void>();
  // A list, not a set: two holds with the same reason are released separately.
  const holds: string[] = [];
  let ranOnce = false;
  let shuttingDown = false;
  let round: Promise<void> | undefined;
  let started: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  // Not serving until the first round has passed: a fresh process is not ready yet.
  const serving = () =>
    ranOnce && !shuttingDown && holds.length === 0 && entries.every(({ check, state }) => check.optional === true || state.ok === true);
  const notify = () => listeners.forEach((listener) => listener());
  /** Runs `change` and tells the listeners if it moved readiness. */
  const changing = (change: () => void) => {
    const before = serving();
    change();
    if (serving() !== before) notify();
  };

  async function runCheck(check: DependencyCheck, state: CheckState): Promise<string | undefined> {
    if (state.pending) return `still running from an earlier round (over ${timeoutMs} ms)`;
    const ac = new AbortController();
    const timeout = setTimeout(() => ac.abort(), timeoutMs);
    const onClose = () => ac.abort();
    lifetime.signal.addEventListener("abort", onClose);
    // The executor turns a synchronous throw into a rejection.
    const call = new Promise<void>((resolve) => resolve(check.check(ac.signal)));
    // Only this call can be pending here: a new one never starts while one is.
    const settled = () => void (state.pending = undefined);
    state.pending = call.then(settled, settled);
    // Race rather than trust the check to honour its signal: a hung driver must not hang us.
    const gaveUp = new Promise<never>((_, reject) =>
      ac.signal.addEventListener("abort", () => reject(new Error(`timed out after ${timeoutMs} ms`))),
    );
    try {
      await Promise.race([call, gaveUp]);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    } finally {
      clearTimeout(timeout);
      lifetime.signal.removeEventListener("abort", onClose);
    }
  }

  async function runRound(): Promise<void> {
    const outcomes = await Promise.all(entries.map(async ({ check, state }) => ({ check, state, error: await runCheck(check, state) })));
    if (lifetime.signal.aborted) return;
    changing(() => {
      for (const { check, state, error } of outcomes) {
        const ok = error === undefined;
        if (!ok && state.ok !== false) log?.warn({ check: check.name, error }, "health check failing");
        if (ok && state.ok === false) {
          if (log?.info) log.info({ check: check.name }, "health check recovered");
          else log?.warn({ check: check.name }, "health check recovered");
        }
        Object.assign(state, { ok, error, checkedAt: new Date(clock.now()) });
      }
      ranOnce = true;
    });
  }

  function refresh(): Promise<void> {
    if (lifetime.signal.aborted) return Promise.resolve();
    round ??= runRound().finally(() => (round = undefined));
    return round;
  }

  function scheduleNext(): void {
    if (lifetime.signal.aborted) return;
    // setTimeout after each round rather than setInterval: rounds never overlap.
    timer = setTimeout(() => void refresh().then(scheduleNext), intervalMs);
    timer.unref();
  }

  return {
    serving,
    report() {
      const out: HealthReport = { serving: serving(), checks: {} };
      for (const { check, state } of entries) {
        out.checks[check.name] = { ok: state.ok === true, error: state.error, checkedAt: state.checkedAt?.toISOString() };
      }
      if (holds.length > 0) out.waiting = [...new Set(holds)];
      return out;
    },
    start() {
      started ??= refresh().then(scheduleNext);
      return started;
    },
    refresh,
    hold(reason) {
      changing(() => holds.push(reason));
      let released = false;
      return () => {
        if (released) return;
        released = true;
        changing(() => holds.splice(holds.indexOf(reason), 1));
      };
    },
    setShuttingDown() {
      if (!shuttingDown) changing(() => (shuttingDown = true));
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get closed() {
      return lifetime.signal.aborted;
    },
    close() {
      if (lifetime.signal.aborted) return;
      clearTimeout(timer);
      lifetime.abort();
      notify();
    },
  };
}
