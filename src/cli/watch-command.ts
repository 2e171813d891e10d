import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Status, type Channel } from "../../gen/herald/v1/notification_pb.js";
import { WatchStatusRequestSchema, type WatchStatusRequest } from "../../gen/herald/v1/notification_service_pb.js";
import { channelFromName } from "../kafka/topics.js";
import { sleep } from "../loop/sleep.js";
import { clientFrom, common, headers } from "./client-commands.js";
import { UsageError } from "./usage-error.js";
import { watchLoop } from "./watch-loop.js";
import { formatJson, formatLine } from "./watch-output.js";

// `herald watch`: WatchStatus as one line per status event, resumed by itself after a dropped
// connection, stopped by Ctrl-C with the cursor to resume from.

export const watchUsage = `  herald watch [--id ID | --user ID | --all] [--status S ...] [--channel C ...]
               [--snapshot [--since ISO]] [--after CURSOR] [--json]
`;

const WATCH_KEEPALIVE = {
  "grpc.keepalive_time_ms": 20_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
};

const options = {
  ...common,
  id: { type: "string" },
  user: { type: "string" },
  all: { type: "boolean", default: false },
  after: { type: "string" },
  snapshot: { type: "boolean", default: false },
  since: { type: "string" },
  status: { type: "string", multiple: true },
  channel: { type: "string", multiple: true },
  json: { type: "boolean", default: false },
} as const;

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof options; strict: true }>>["values"];

export interface WatchCommand {
  request: WatchStatusRequest;
  json: boolean;
  values: Values;
}

/** `--status sent --status failed` or `--status sent,failed`. */
function list(raw: string[] | undefined): string[] {
  return (raw ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

function statusFrom(name: string): Status {
  const key = name.toUpperCase().replace(/-/g, "_");
  const status = key === "UNSPECIFIED" ? undefined : (Status as unknown as Record<string, Status | undefined>)[key];
  if (status === undefined) {
    const names = Object.keys(Status).filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED");
    throw new UsageError(`--status: expected one of ${names.map((n) => n.toLowerCase()).join(", ")}; got "${name}"`);
  }
  return status;
}

function channelFrom(name: string): Channel {
  const channel = channelFromName(name.toLowerCase());
  if (channel === undefined) throw new UsageError(`--channel: expected email, sms, push or webhook; got "${name}"`);
  return channel;
}

/** Parses and checks the flags; every mistake is a UsageError (exit 2) before anything connects. */
export function parseWatchArgs(args: string[]): WatchCommand {
  let values: Values;
  try {
    ({ values } = parseArgs({ args, options, strict: true }));
  } catch (err) {
    // parseArgs' own errors (unknown flag, missing value, stray argument) are usage errors too.
    if (String((err as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS_")) throw new UsageError((err as Error).message);
    throw err;
  }
  const selectors = (["id", "user", "all"] as const).filter((k) => values[k] !== undefined && values[k] !== false);
  if (selectors.length > 1) throw new UsageError(`--${selectors[0]} and --${selectors[1]} cannot be combined: watch one notification, one user, or --all`);
  if (values.id === "" || values.user === "") throw new UsageError(`--${values.id === "" ? "id" : "user"} needs a value`);
  if (values.after === "") throw new UsageError("--after needs a cursor (printed by an earlier watch)");
  // A cursor already stands after the snapshot it came from; a new snapshot would repeat it.
  if (values.after !== undefined && values.snapshot) throw new UsageError("--after resumes a watch; --snapshot starts a new one: use one of them");
  if (values.since !== undefined && !values.snapshot) throw new UsageError("--since limits the snapshot: use it with --snapshot");
  if (values.since !== undefined && values.id !== undefined) throw new UsageError("--since goes with --user or --all, not --id");

  const request = create(WatchStatusRequestSchema, {
    statuses: list(values.status).map(statusFrom),
    channels: list(values.channel).map(channelFrom),
    snapshot: values.snapshot,
    after: values.after ?? "",
  });
  if (values.id !== undefined) request.selector = { case: "notificationId", value: values.id };
  if (values.user !== undefined) request.selector = { case: "userId", value: values.user };
  if (values.since !== undefined) {
    const since = new Date(values.since);
    if (Number.isNaN(since.getTime())) throw new UsageError("--since expects an ISO-8601 instant, e.g. 2026-11-23T09:00:00Z");
    request.snapshotSince = timestampFromDate(since);
  }
  return { request, json: values.json, values };
}

/**
 * Runs `herald watch ...` against the server at --addr until Ctrl-C or SIGTERM; returns the exit
 * code (0 when stopped by a signal, 1 when the server refused the watch).
 */
export async function runWatchCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { request, json, values } = parseWatchArgs(args);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  // `once`: a second Ctrl-C gets Node's default (exit at once) should stopping ever stall.
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // `herald watch | head -5`: the reader has gone, so stop rather than die of EPIPE.
  const onOutputError = () => stop.abort();
  process.stdout.on("error", onOutputError);
  try {
    return await watchLoop(
      {
        // HTTP/2 pings: a connection that dies without a reset (a partition, a sleeping
        // laptop) fails the stream within ~30 s, and the loop resumes elsewhere.
        connect: () => clientFrom(values, env, WATCH_KEEPALIVE),
        format: json ? formatJson : formatLine,
        out: process.stdout,
        err: process.stderr,
        sleep,
        signal: stop.signal,
        headers: headers(values),
      },
      request,
    );
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.stdout.off("error", onOutputError);
  }
}
