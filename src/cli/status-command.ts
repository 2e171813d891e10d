import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { createOperationsClient } from "../client/index.js";
import { GetOverviewResponseSchema, type GetOverviewResponse } from "../../gen/herald/v1/operations_pb.js";
import { sleep } from "../loop/sleep.js";
import { clientOptions, common, headers } from "./client-commands.js";
import { formatOverview } from "./status-output.js";
import { UsageError } from "./usage-error.js";

// `herald status`: OperationsService/GetOverview on one screen (status-output.ts), once, or
// redrawn every few seconds with --watch until Ctrl-C.

export const statusUsage = `  herald status [--json] [--watch [SECONDS]]
                                 consumer lag per partition, outbox, due rows, dead letters, rates
`;

const options = {
  ...common,
  json: { type: "boolean", default: false },
  watch: { type: "string" },
} as const;

/** --watch without a number redraws this often. */
const DEFAULT_WATCH_SECONDS = 2;
const CALL_TIMEOUT_MS = 10_000;

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof options; strict: true }>>["values"];

export interface StatusCommand {
  json: boolean;
  /** Set with --watch: the pause between two snapshots. */
  watchMs?: number;
  values: Values;
}

/** Parses the flags; `--watch` may stand alone (its number is optional, which parseArgs cannot say). */
export function parseStatusArgs(args: readonly string[]): StatusCommand {
  const normalized = args.flatMap((arg, i) => {
    const next = args[i + 1];
    return arg === "--watch" && (next === undefined || next.startsWith("-")) ? [`--watch=${DEFAULT_WATCH_SECONDS}`] : [arg];
  });
  let values: Values;
  try {
    ({ values } = parseArgs({ args: normalized, options, strict: true }));
  } catch (err) {
    if (String((err as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS_")) throw new UsageError((err as Error).message);
    throw err;
  }
  const command: StatusCommand = { json: values.json, values };
  if (values.watch !== undefined) {
    const s = Number(values.watch);
    if (!(Number.isFinite(s) && s >= 0.5 && s <= 3600)) throw new UsageError(`--watch expects seconds from 0.5 to 3600, got "${values.watch}"`);
    command.watchMs = s * 1000;
  }
  return command;
}

export interface StatusLoopDeps {
  overview(): Promise<GetOverviewResponse>;
  out: { write(chunk: string): unknown; isTTY?: boolean };
  err: { write(chunk: string): unknown };
  sleep(ms: number, signal: AbortSignal): Promise<unknown>;
  signal: AbortSignal;
}

/** Clears a terminal and homes the cursor, so each snapshot replaces the last. */
const CLEAR = "\x1b[H\x1b[2J";

/**
 * One snapshot, or with `watchMs` one per interval until `signal` aborts. A failed snapshot ends a
 * single run (the caller prints it, exit 1); under --watch it is printed and the next one tried,
 * as a dashboard would.
 */
export async function statusLoop(deps: StatusLoopDeps, command: Pick<StatusCommand, "json" | "watchMs">): Promise<void> {
  const { out, json, watchMs } = { ...deps, ...command };
  const render = (o: GetOverviewResponse) =>
    json ? toJsonString(GetOverviewResponseSchema, o, watchMs === undefined ? { prettySpaces: 2 } : {}) + "\n" : formatOverview(o);
  if (watchMs === undefined) {
    out.write(render(await deps.overview()));
    return;
  }
  const clear = out.isTTY === true && !json;
  while (!deps.signal.aborted) {
    try {
      const text = render(await deps.overview());
      if (!deps.signal.aborted) out.write((clear ? CLEAR : "") + text);
    } catch (err) {
      if (deps.signal.aborted) break;
      deps.err.write(`herald: ${err instanceof ConnectError ? err.message : String(err)}\n`);
    }
    await deps.sleep(watchMs, deps.signal);
  }
}

export async function runStatusCommand(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const command = parseStatusArgs(args);
  const { values } = command;
  const client = createOperationsClient(clientOptions(values, env));
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // `herald status --watch | head`: the reader has gone, so stop rather than die of EPIPE.
  process.stdout.on("error", onSignal);
  try {
    await statusLoop(
      {
        overview: () => client.getOverview({}, { headers: headers(values), timeoutMs: CALL_TIMEOUT_MS, signal: stop.signal }),
        out: process.stdout,
        err: process.stderr,
        sleep,
        signal: stop.signal,
      },
      command,
    );
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.stdout.off("error", onSignal);
    client.close();
  }
}
