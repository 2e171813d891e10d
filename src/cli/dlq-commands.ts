import { parseArgs } from "node:util";
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createDeadLetterClient } from "../client/index.js";
import {
  DeadLetterFilterSchema,
  ListDeadLettersResponseSchema,
  type DeadLetter,
  type DeadLetterFilter,
} from "../../gen/herald/v1/dead_letter_pb.js";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import { channelFromName, channelName } from "../kafka/topics.js";
import { DEV_API_KEY } from "../domain/api-keys.js";
import { UsageError } from "./usage-error.js";

// `herald dlq list|redrive`: operators' view of dead letters, as a grpc-js
// client of a running server (same --addr / --api-key conventions as send/get).

export const dlqUsage = `  herald dlq list [--channel email] [--since ISO] [--until ISO] [--error TEXT]
                  [--status failed|dead_lettered] [--limit N] [--json]
  herald dlq redrive ID
  herald dlq redrive --all [--channel ...] [--since ...] [--until ...] [--error ...] [--status ...] [--limit N]
`;

/** Where the commands print; process.stdout/stderr unless a caller (a test) passes its own. */
export interface DlqIo {
  out: { write(chunk: string): unknown };
  err: { write(chunk: string): unknown };
}

const options = {
  addr: { type: "string" },
  "api-key": { type: "string" },
  "request-id": { type: "string" },
  channel: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  error: { type: "string" },
  status: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean", default: false },
  all: { type: "boolean", default: false },
} as const;

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof options; allowPositionals: true }>>["values"];

/** `list` prints at most this many unless --limit says otherwise. */
const listDefaultLimit = 100;
/** The server's largest page. */
const maxPageSize = 500;
const errorColumnChars = 60;

function instant(raw: string, flag: string): Date {
  const at = new Date(raw);
  if (Number.isNaN(at.getTime())) throw new UsageError(`--${flag} expects an ISO-8601 instant, e.g. 2026-11-23T09:00:00Z`);
  return at;
}

function filterFrom(v: Values): DeadLetterFilter {
  const filter = create(DeadLetterFilterSchema);
  if (v.channel !== undefined) {
    const channel = channelFromName(v.channel);
    if (channel === undefined) throw new UsageError("--channel must be email, sms, push or webhook");
    filter.channel = channel;
  }
  if (v.since !== undefined) filter.since = timestampFromDate(instant(v.since, "since"));
  if (v.until !== undefined) filter.until = timestampFromDate(instant(v.until, "until"));
  if (v.error !== undefined) filter.errorContains = v.error;
  if (v.status !== undefined) {
    const status = { failed: Status.FAILED, dead_lettered: Status.DEAD_LETTERED, "dead-lettered": Status.DEAD_LETTERED }[
      v.status.toLowerCase()
    ];
    if (status === undefined) throw new UsageError("--status must be failed or dead_lettered");
    filter.status = status;
  }
  return filter;
}

function limitFrom(v: Values, fallback: number): number {
  if (v.limit === undefined) return fallback;
  const n = Number(v.limit);
  if (!Number.isInteger(n) || n < 1) throw new UsageError("--limit expects a positive integer");
  return n;
}

function statusName(s: Status): string {
  return (Status[s] ?? String(s)).toLowerCase();
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A fixed-width table: time, id, channel, status, attempts, last error (truncated). */
export function formatDeadLetters(deadLetters: readonly DeadLetter[]): string {
  const rows = deadLetters.map((d) => [
    d.deadLetterTime ? timestampDate(d.deadLetterTime).toISOString() : "",
    d.notificationId,
    d.channel ? channelName(d.channel) : "",
    statusName(d.status),
    String(d.attempts),
    oneLine(d.lastError, errorColumnChars),
  ]);
  const header = ["TIME", "ID", "CHANNEL", "STATUS", "ATTEMPTS", "LAST ERROR"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** Runs `herald dlq <list|redrive> ...`. */
export async function runDlqCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  io: DlqIo = { out: process.stdout, err: process.stderr },
): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== "list" && sub !== "redrive") throw new UsageError(`usage:\n${dlqUsage}`);
  const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  const client = createDeadLetterClient({
    address: values.addr ?? env.HERALD_GRPC_ADDR ?? "127.0.0.1:50051",
    apiKey: values["api-key"] ?? env.HERALD_API_KEY ?? DEV_API_KEY,
  });
  const call = { headers: values["request-id"] ? { "x-request-id": values["request-id"] } : undefined, timeoutMs: 30_000 };
  try {
    if (sub === "list") {
      if (positionals.length > 0 || values.all) throw new UsageError(`usage:\n${dlqUsage}`);
      const filter = filterFrom(values);
      const limit = limitFrom(values, listDefaultLimit);
      const deadLetters: DeadLetter[] = [];
      let pageToken = "";
      do {
        const pageSize = Math.min(maxPageSize, limit - deadLetters.length);
        const page = await client.listDeadLetters({ filter, pageSize, pageToken }, call);
        deadLetters.push(...page.deadLetters);
        pageToken = page.nextPageToken;
      } while (pageToken !== "" && deadLetters.length < limit);
      if (values.json) {
        const response = create(ListDeadLettersResponseSchema, { deadLetters, nextPageToken: pageToken });
        io.out.write(toJsonString(ListDeadLettersResponseSchema, response, { prettySpaces: 2 }) + "\n");
      } else if (deadLetters.length === 0) {
        io.err.write("no dead letters\n");
      } else {
        io.out.write(formatDeadLetters(deadLetters));
        if (pageToken !== "") io.err.write(`(more than ${limit}; raise --limit to see them)\n`);
      }
      return;
    }

    const [id, ...extra] = positionals;
    if (extra.length > 0 || (id === undefined) === !values.all || values.json) {
      throw new UsageError(`redrive takes one ID, or --all with filters\n${dlqUsage}`);
    }
    const filterFlags = (["channel", "since", "until", "error", "status", "limit"] as const).filter((f) => values[f] !== undefined);
    if (id !== undefined && filterFlags.length > 0) {
      throw new UsageError(`--${filterFlags[0]} goes with --all, not with an ID`);
    }
    const res =
      id !== undefined
        ? await client.redriveDeadLetters({ target: { case: "notificationId", value: id } }, call)
        : await client.redriveDeadLetters(
            { target: { case: "filter", value: filterFrom(values) }, limit: limitFrom(values, 0) },
            call,
          );
    for (const redriven of res.notificationIds) io.out.write(`${redriven}\n`);
    io.err.write(`${res.notificationIds.length} redriven\n`);
  } finally {
    client.close();
  }
}
