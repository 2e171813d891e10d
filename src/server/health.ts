import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { systemClock, type Clock } from "../clock.js";

// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
// driven by dependency checks run in the background: Check and Watch answer
// from the last result and never wait on a dependency, so a probe stays fast
// while the database is slow.

/** One dependency the server needs to serve, e.g. PostgreSQL or Kafka. */
export interface DependencyCheck {
  name: string;
  /** Resolves when healthy. Should give up when `signal` aborts (timeout or close). */
  check(signal: AbortSignal): Promise<void>;
  /**
   * Reported (in /readyz) but not part of SERVING: a dependency the API can do
   * without, like Redis, which only the delivery path needs. @defaultValue false
   */
  optional?: boolean;
}

export interface HealthOptions {
  checks: DependencyCheck[];
  /** Service names answered besides "" (overall); all share the overall status. */
  services: string[];
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
}

export interface HealthServer {
  impl: ServiceImpl<typeof Health>;
  /** Snapshot for /readyz: serving, and each check's last outcome. */
  report(): HealthReport;
  /** Runs the checks once, then every intervalMs (the timer does not keep the process alive). */
  start(): Promise<void>;
  /** Runs the checks now; joins the round in flight if there is one. */
  refresh(): Promise<void>;
  /** NOT_SERVING from now on, whatever the checks say, so load balancers drain us (SIGTERM). */
  setShuttingDown(): void;
  /** Stops the checks and ends every Watch stream cleanly. Idempotent. */
  close(): void;
}

interface CheckState {
  ok?: boolean;
  error?: string;
  checkedAt?: Date;
  /** The call not settled yet, kept past its timeout so a hung check is never started twice. */
  pending?: Promise<void>;
}

export function createHealth(opts: HealthOptions): HealthServer {
  const { checks, intervalMs = 2000, timeoutMs = 1500, clock = systemClock, log } = opts;
  if (new Set(checks.map((c) => c.name)).size !== checks.length) throw new Error("health: check names must be unique");
  if (!(intervalMs > 0) || !(timeoutMs > 0)) throw new Error("health: intervalMs and timeoutMs must be positive");
  const known = new Set(["", ...opts.services]);
  const entries = checks.map((check): { check: DependencyCheck; state: CheckState } => ({ check, state: {} }));
  const lifetime = new AbortController();
  // Watchers sleep until one of these wakes them, then compare against what they last sent.
  const wakers = new Set<() => void>();
  let ranOnce = false;
  let shuttingDown = false;
  let round: Promise<void> | undefined;
  let started: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  // Not serving until the first round has passed: a fresh pod is not ready yet.
  const serving = () => ranOnce && !shuttingDown && entries.every(({ check, state }) => check.optional === true || state.ok === true);
  const statusOf = (service: string) =>
    !known.has(service) ? ServingStatus.SERVICE_UNKNOWN : serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  const wakeAll = () => wakers.forEach((wake) => wake());

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
    const before = serving();
    await Promise.all(
      entries.map(async ({ check, state }) => {
        const error = await runCheck(check, state);
        if (lifetime.signal.aborted) return;
        const ok = error === undefined;
        if (!ok && state.ok !== false) log?.warn({ check: check.name, error }, "health check failing");
        if (ok && state.ok === false) {
          if (log?.info) log.info({ check: check.name }, "health check recovered");
          else log?.warn({ check: check.name }, "health check recovered");
        }
        Object.assign(state, { ok, error, checkedAt: new Date(clock.now()) });
      }),
    );
    ranOnce = true;
    if (serving() !== before) wakeAll();
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

  const impl: ServiceImpl<typeof Health> = {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status: statusOf(req.service) };
    },
    list() {
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: statusOf(name) }])) };
    },
    async *watch(req, ctx) {
      // Per the protocol an unknown service gets SERVICE_UNKNOWN and the stream stays open.
      let wake: (() => void) | undefined;
      const waker = () => wake?.();
      wakers.add(waker);
      ctx.signal.addEventListener("abort", waker);
      try {
        let last: ServingStatus | undefined;
        while (!ctx.signal.aborted && !lifetime.signal.aborted) {
          const status = statusOf(req.service);
          if (status !== last) {
            last = status;
            yield { status };
            continue; // the status may have moved while the client read
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        wakers.delete(waker);
        ctx.signal.removeEventListener("abort", waker);
      }
    },
  };

  return {
    impl,
    report() {
      const out: HealthReport = { serving: serving(), checks: {} };
      for (const { check, state } of entries) {
        out.checks[check.name] = { ok: state.ok === true, error: state.error, checkedAt: state.checkedAt?.toISOString() };
      }
      return out;
    },
    start() {
      started ??= refresh().then(scheduleNext);
      return started;
    },
    refresh,
    setShuttingDown() {
      if (shuttingDown) return;
      shuttingDown = true;
      wakeAll();
    },
    close() {
      if (lifetime.signal.aborted) return;
      clearTimeout(timer);
      lifetime.abort();
      wakeAll();
    },
  };
}
