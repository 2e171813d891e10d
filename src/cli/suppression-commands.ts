import { parseArgs } from "node:util";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createSuppressionClient } from "../client/index.js";
import { SuppressionReason, type Suppression } from "../../gen/herald/v1/suppression_pb.js";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { channelFromName, channelName } from "../kafka/topics.js";
import { DEV_API_KEY } from "../domain/api-keys.js";
import { UsageError } from "./usage-error.js";

// `herald suppressions list|add|remove`: the operator's view of suppressed addresses, as a
// grpc-js client of a running server (same --addr / --api-key conventions as dlq and send).

export const suppressionsUsage = `  herald suppressions list [--channel email] [--limit N]
  herald suppressions add --channel email --address ada@example.com [--note TEXT]
  herald suppressions remove --channel email --address ada@example.com
                                 suppressed addresses fail at once, without a provider call
`;

/** Where the commands print; process.stdout/stderr unless a caller (a test) passes its own. */
export interface SuppressionsIo {
  out: { write(chunk: string): unknown };
  err: { write(chunk: string): unknown };
}

const options = {
  addr: { type: "string" },
  "api-key": { type: "string" },
  channel: { type: "string" },
  address: { type: "string" },
  note: { type: "string" },
  limit: { type: "string" },
} as const;

/** `list` prints at most this many unless --limit says otherwise. */
const listDefaultLimit = 100;
/** The server's largest page. */
const maxPageSize = 500;
const detailColumnChars = 60;

const reasonNames: Record<SuppressionReason, string> = {
  [SuppressionReason.UNSPECIFIED]: "",
  [SuppressionReason.HARD_BOUNCE]: "hard_bounce",
  [SuppressionReason.COMPLAINT]: "complaint",
  [SuppressionReason.MANUAL]: "manual",
};

function channelFlag(raw: string | undefined, required: boolean): Channel | undefined {
  if (raw === undefined) {
    if (required) throw new UsageError("--channel is required: email, sms, push or webhook");
    return undefined;
  }
  const channel = channelFromName(raw);
  if (channel === undefined) throw new UsageError("--channel must be email, sms, push or webhook");
  return channel;
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A fixed-width table: time, channel, address, reason, detail (truncated), notification. */
export function formatSuppressions(suppressions: readonly Suppression[]): string {
  const rows = suppressions.map((s) => [
    s.createTime ? timestampDate(s.createTime).toISOString() : "",
    s.channel ? channelName(s.channel) : "",
    s.address,
    reasonNames[s.reason] ?? String(s.reason),
    oneLine(s.detail, detailColumnChars),
    s.notificationId,
  ]);
  const header = ["SINCE", "CHANNEL", "ADDRESS", "REASON", "DETAIL", "NOTIFICATION"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** Runs `herald suppressions <list|add|remove> ...`. */
export async function runSuppressionsCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  io: SuppressionsIo = { out: process.stdout, err: process.stderr },
): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== "list" && sub !== "add" && sub !== "remove") throw new UsageError(`usage:\n${suppressionsUsage}`);
  const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n${suppressionsUsage}`);
  // Checked before connecting, so a typo says what is wrong rather than what the server refused.
  const channel = channelFlag(values.channel, sub !== "list");
  if (sub === "list" && (values.address !== undefined || values.note !== undefined)) {
    throw new UsageError(`list takes --channel and --limit only\n${suppressionsUsage}`);
  }
  if (sub !== "list" && values.address === undefined) throw new UsageError("--address is required");
  if (sub === "remove" && values.note !== undefined) throw new UsageError("--note goes with add, not remove");
  if (sub !== "list" && values.limit !== undefined) throw new UsageError("--limit goes with list");
  let limit = listDefaultLimit;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError("--limit expects a positive integer");
  }

  const client = createSuppressionClient({
    address: values.addr ?? env.HERALD_GRPC_ADDR ?? "127.0.0.1:50051",
    apiKey: values["api-key"] ?? env.HERALD_API_KEY ?? DEV_API_KEY,
  });
  const call = { timeoutMs: 30_000 };
  try {
    if (sub === "list") {
      const suppressions: Suppression[] = [];
      let pageToken = "";
      do {
        const pageSize = Math.min(maxPageSize, limit - suppressions.length);
        const page = await client.listSuppressions({ channel, pageSize, pageToken }, call);
        suppressions.push(...page.suppressions);
        pageToken = page.nextPageToken;
      } while (pageToken !== "" && suppressions.length < limit);
      if (suppressions.length === 0) {
        io.err.write("no suppressions\n");
      } else {
        io.out.write(formatSuppressions(suppressions));
        if (pageToken !== "") io.err.write(`(more than ${limit}; raise --limit to see them)\n`);
      }
      return;
    }
    const address = values.address!;
    if (sub === "add") {
      const res = await client.addSuppression({ channel, address, note: values.note ?? "" }, call);
      io.out.write(formatSuppressions(res.suppression ? [res.suppression] : []));
      io.err.write(res.created ? "suppressed\n" : "already suppressed (the existing entry is kept)\n");
      return;
    }
    const res = await client.removeSuppression({ channel, address }, call);
    io.out.write(formatSuppressions(res.suppression ? [res.suppression] : []));
    io.err.write("removed: sends to this address go through again\n");
  } finally {
    client.close();
  }
}
