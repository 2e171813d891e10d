import { loadConfig } from "../config.js";
import { describeUnknown, unknownVariables } from "../config-vars.js";
import type { Mode } from "../config-env.js";
import { createLogger } from "../log.js";
import { openRuntime } from "../roles/runtime.js";
import { startServerRole } from "../roles/server.js";
import { startRelayRole } from "../roles/relay.js";
import { startSchedulerRole } from "../roles/scheduler.js";
import { createWorkerProviders, startWorkerRole } from "../roles/worker.js";
import { channelNames, type ChannelName } from "../domain/channels.js";

export type Role = "server" | "relay" | "scheduler" | "worker" | "dev";

export interface RoleOptions {
  /** Channels the worker role delivers (dev: all of them). */
  channels?: readonly ChannelName[];
}

/**
 * Starts one role (or, for dev, all of them in one process) and stops it
 * gracefully on SIGTERM/SIGINT: stop taking work, drain, flush, disconnect.
 */
export async function runRoles(role: Role, env: NodeJS.ProcessEnv, opts: RoleOptions = {}): Promise<void> {
  const mode: Mode = role === "dev" ? "dev" : "production";
  const config = loadConfig(env, mode);
  const log = createLogger({ level: config.logLevel, role });
  // Reported, not refused: a variable from a newer or older Herald must not stop a deployment.
  for (const u of unknownVariables(env)) log.warn({ variable: u.name, suggestion: u.suggestion }, describeUnknown(u));
  const channels = role === "dev" ? channelNames : role === "worker" ? (opts.channels ?? channelNames) : [];
  // Before connecting to anything: a channel without a provider is a
  // configuration error (naming the variable to set), not a runtime failure.
  const providers = Object.fromEntries(createWorkerProviders(config, channels, log));
  const rt = await openRuntime(config, log);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    void rt.beginShutdown().then(() => {
      log.info("stopped");
      // Everything is drained; only library timers (kafkajs, ioredis) may keep
      // the loop alive now. Give them a moment, then leave.
      setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  try {
    if (role === "server" || role === "dev") await startServerRole(rt);
    if (role === "relay" || role === "dev") await startRelayRole(rt);
    if (role === "scheduler" || role === "dev") startSchedulerRole(rt);
    if (channels.length > 0) await startWorkerRole(rt, { channels, providers });
  } catch (err) {
    log.fatal({ err }, "failed to start");
    process.exitCode = 1;
    stop("startup failure");
    return;
  }
  log.info({ role, ...(role === "worker" ? { channels } : {}) }, `herald ${role} started`);
  if (role === "dev") {
    log.info(
      { grpc: `${config.grpcAddr.host}:${config.grpcAddr.port}`, http: `http://${config.httpAddr.host}:${config.httpAddr.port}`, apiKey: "herald-dev-key" },
      "herald dev is up: try `npx herald send --channel email --to ada@example.com --text Hello`",
    );
  }
}
