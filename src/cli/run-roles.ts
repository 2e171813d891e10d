import { loadConfig, type Config } from "../config.js";
import { describeUnknown, unknownVariables } from "../config-vars.js";
import { ConfigError, type Mode } from "../config-env.js";
import { createLogger, type Logger } from "../log.js";
import { probeRoutes } from "../health/probes.js";
import { startHealthPort, type HealthPort } from "../health/port.js";
import { metricsRoute } from "../metrics/route.js";
import type { CircuitBoard, Provider } from "../workers/providers/index.js";
import { createRuntime, prepareRuntime, type Runtime, type RuntimeNeeds } from "../roles/runtime.js";
import { StartAborted } from "../roles/dependency-wait.js";
import { startServerRole } from "../roles/server.js";
import { startRelayRole } from "../roles/relay.js";
import { startSchedulerRole } from "../roles/scheduler.js";
import { createWorkerBreakers, createWorkerProviders, startWorkerRole } from "../roles/worker.js";
import { channelNames, type ChannelName } from "../domain/channels.js";

export type Role = "server" | "relay" | "scheduler" | "worker" | "dev";

export interface RoleOptions {
  /** Channels the worker role delivers (dev: all of them). */
  channels?: readonly ChannelName[];
}

/**
 * Starts one role (or, for dev, all of them in one process) and stops it gracefully on
 * SIGTERM/SIGINT: stop taking work, drain, flush, disconnect. A dependency that is down at start
 * is waited for (the health port says "alive, not ready" meanwhile); only a configuration error
 * ends the process, with exit code 1 and one JSON log line, like every other startup failure.
 */
export async function runRoles(role: Role, env: NodeJS.ProcessEnv, opts: RoleOptions = {}): Promise<void> {
  try {
    await run(role, env, opts);
  } catch (err) {
    // A failure nobody foresaw (building a client, say) is still one JSON line, not a stack on stderr.
    createLogger({ role }).fatal({ err }, "failed to start");
    process.exitCode = 1;
  }
}

async function run(role: Role, env: NodeJS.ProcessEnv, opts: RoleOptions): Promise<void> {
  const channels = role === "dev" ? channelNames : role === "worker" ? (opts.channels ?? channelNames) : [];
  const setup = configure(role, env, channels);
  if (!setup) return;
  const { config, log, providers, breakers } = setup;
  // Nothing after this point may end the process with a raw stack on stderr.
  process.on("uncaughtException", (err) => fatal(log, err, "uncaught exception"));
  process.on("unhandledRejection", (err) => fatal(log, err, "unhandled rejection"));

  const needs: RuntimeNeeds = { kafka: role !== "scheduler", redis: role === "server" || role === "worker" || role === "dev" };
  const rt = createRuntime(config, log, needs);
  const starting = rt.health.hold("starting");
  let waiting = true;
  let healthPort: HealthPort | undefined;

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    // Still waiting for a dependency: nothing is in flight, and a connect to a host that drops
    // packets must not hold the exit for its whole timeout.
    if (waiting) setTimeout(() => process.exit(process.exitCode ?? 0), 2000);
    void rt
      .beginShutdown()
      .then(() => healthPort?.close())
      .then(() => {
        log.info("stopped");
        // Everything is drained; only library timers (kafkajs, ioredis) may keep
        // the loop alive now. Give them a moment, then leave.
        setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
      });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  try {
    // First, so a supervisor can tell a process waiting for its dependencies from a dead one.
    healthPort = await openHealthPort(config, rt, log);
    await prepareRuntime(rt, needs);
    waiting = false;
    if (role === "server" || role === "dev") await startServerRole(rt);
    if (role === "relay" || role === "dev") await startRelayRole(rt);
    if (role === "scheduler" || role === "dev") startSchedulerRole(rt);
    if (channels.length > 0) await startWorkerRole(rt, { channels, providers, breakers });
  } catch (err) {
    // Shutdown began while a dependency was still missing: stop() is already on its way out.
    if (err instanceof StartAborted || rt.shutdownSignal.aborted) return;
    log.fatal({ err }, "failed to start");
    process.exitCode = 1;
    stop("startup failure");
    return;
  }
  starting();
  log.info({ role, ...(role === "worker" ? { channels } : {}) }, `herald ${role} started`);
  if (role === "dev") {
    log.info(
      { grpc: `${config.grpcAddr.host}:${config.grpcAddr.port}`, http: `http://${config.httpAddr.host}:${config.httpAddr.port}`, apiKey: "herald-dev-key" },
      "herald dev is up: try `npx herald send --channel email --to ada@example.com --text Hello`",
    );
  }
}

/**
 * The configuration, the logger and the worker providers, or undefined after logging why not (a
 * bad variable, a channel without a provider) and setting exit code 1: all before connecting to
 * anything, so a configuration error is told as one and not as a dependency failure.
 */
function configure(
  role: Role,
  env: NodeJS.ProcessEnv,
  channels: readonly ChannelName[],
): { config: Config; log: Logger; providers: Partial<Record<ChannelName, Provider>>; breakers: CircuitBoard } | undefined {
  // Until the configuration names a level: a bad configuration is a JSON line like any other.
  let log = createLogger({ role });
  try {
    const mode: Mode = role === "dev" ? "dev" : "production";
    const config = loadConfig(env, mode);
    log = createLogger({ level: config.logLevel, role });
    // Reported, not refused: a variable from a newer or older Herald must not stop a deployment.
    for (const u of unknownVariables(env)) log.warn({ variable: u.name, suggestion: u.suggestion }, describeUnknown(u));
    // Attached to Redis and the metrics registry when the worker role starts.
    const breakers = createWorkerBreakers(config, log);
    const providers = Object.fromEntries(createWorkerProviders(config, channels, log, {}, breakers));
    return { config, log, providers, breakers };
  } catch (err) {
    if (err instanceof ConfigError) log.fatal(`invalid configuration: ${err.message}`);
    else log.fatal({ err }, "failed to start");
    process.exitCode = 1;
    return undefined;
  }
}

/** Serves /healthz, /readyz and /metrics on HERALD_HEALTH_PORT, when set. */
async function openHealthPort(config: Config, rt: Runtime, log: Logger): Promise<HealthPort | undefined> {
  if (!config.healthAddr) return undefined;
  const port = await startHealthPort({ ...config.healthAddr, routes: [probeRoutes(rt.health), metricsRoute(rt.metrics, log)], log });
  log.info({ addr: `${config.healthAddr.host}:${port.port}` }, "health port listening");
  return port;
}

function fatal(log: Logger, err: unknown, msg: string): void {
  log.fatal({ err }, msg);
  process.exit(1);
}
