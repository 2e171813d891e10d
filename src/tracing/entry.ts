import { tracingConfigured } from "./configured.js";

// Run by the process entry (src/cli.ts) before the CLI proper is imported. When tracing is
// configured, the SDK and its instrumentations must be in place before pg, ioredis, grpc-js and
// node:http are first imported, or the ESM imports of them are never seen (sdk.ts). When it is not,
// nothing of the SDK is imported at all: Herald's spans go to @opentelemetry/api's no-op.

const ROLES = new Set(["dev", "server", "relay", "scheduler", "worker"]);

/** Starts tracing for a role command (`herald server`, ...); client commands are not traced. */
export async function startTracingFromEnv(argv: readonly string[], env: Record<string, string | undefined>): Promise<void> {
  const role = argv[0];
  if (!role || !ROLES.has(role) || !tracingConfigured(env)) return;
  try {
    const { startTracing } = await import("./sdk.js");
    startTracing({ defaultServiceName: `herald-${role}` });
  } catch (err) {
    // Traces are an aid, not the service: the role runs untraced rather than not at all. (No
    // logger exists yet; this is the one line a broken install gets.)
    console.error(`herald: tracing not started: ${err instanceof Error ? err.message : String(err)}`);
  }
}
