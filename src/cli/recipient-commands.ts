import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { CategorySchema, EraseRecipientResponseSchema, PreferencesSchema, RecipientProfileSchema, type RecipientProfile } from "../../gen/herald/v1/recipient_pb.js";
import { createRecipientClient } from "../client/index.js";
import { DEV_API_KEY } from "../domain/api-keys.js";
import { UsageError } from "./usage-error.js";

// `herald recipient put|get|delete|list`: recipient profiles from a terminal, as a grpc-js client
// of a running server (same --addr / --api-key conventions as send, dlq and suppressions). The
// server checks every field; the command only turns flags into a profile.

export const recipientUsage = `  herald recipient put --user ada [--email ada@example.com] [--phone +14155550100]
                       [--push-token T]... [--webhook-url URL] [--time-zone Europe/Zurich]
                       [--locale de-CH] [--data key=value]...
  herald recipient get --user ada | delete --user ada
  herald recipient erase --user ada
  herald recipient list [--limit N]
  herald recipient preferences --user ada
  herald recipient categories
                                 recipient profiles (put replaces the whole profile), a
                                 recipient's preferences, the tenant's categories; erase
                                 forgets the person (profile, preferences, the addresses and
                                 content of their notifications), audited
`;

/** Where the commands print; process.stdout/stderr unless a caller (a test) passes its own. */
export interface RecipientIo {
  out: { write(chunk: string): unknown };
  err: { write(chunk: string): unknown };
}

const options = {
  addr: { type: "string" },
  "api-key": { type: "string" },
  user: { type: "string" },
  email: { type: "string" },
  phone: { type: "string" },
  "push-token": { type: "string", multiple: true },
  "webhook-url": { type: "string" },
  "time-zone": { type: "string" },
  locale: { type: "string" },
  data: { type: "string", multiple: true },
  limit: { type: "string" },
} as const;

const subcommands = new Set(["put", "get", "delete", "list", "preferences", "categories", "erase"]);
const profileFlags = ["email", "phone", "push-token", "webhook-url", "time-zone", "locale", "data"] as const;
const listDefaultLimit = 100;
const maxPageSize = 500;

/** A profile as the server returns it, in proto JSON (what `herald get` prints for a notification). */
export function formatProfile(p: RecipientProfile): string {
  return `${toJsonString(RecipientProfileSchema, p, { prettySpaces: 2 })}\n`;
}

/** USER_ID, EMAIL, PHONE, PUSH (token count), WEBHOOK, TIME_ZONE, LOCALE, UPDATED. */
export function formatProfiles(profiles: readonly RecipientProfile[]): string {
  const rows = profiles.map((p) => [
    p.userId,
    p.email,
    p.phone,
    String(p.pushTokens.length),
    p.webhookUrl,
    p.timeZone,
    p.locale,
    p.updateTime ? timestampDate(p.updateTime).toISOString() : "",
  ]);
  const header = ["USER_ID", "EMAIL", "PHONE", "PUSH", "WEBHOOK", "TIME_ZONE", "LOCALE", "UPDATED"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

function dataFlags(pairs: readonly string[]): Record<string, string> {
  const data: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--data expects key=value, got ${JSON.stringify(pair)}`);
    data[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return data;
}

/** Runs `herald recipient <put|get|delete|list|preferences|categories|erase> ...`. */
export async function runRecipientCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  io: RecipientIo = { out: process.stdout, err: process.stderr },
): Promise<void> {
  const [sub, ...rest] = args;
  if (!subcommands.has(sub ?? "")) throw new UsageError(`usage:\n${recipientUsage}`);
  const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n${recipientUsage}`);
  // Checked before connecting, so a typo says what is wrong rather than what the server refused.
  const needsUser = sub !== "list" && sub !== "categories";
  if (needsUser && values.user === undefined) throw new UsageError("--user is required");
  if (!needsUser && values.user !== undefined) throw new UsageError(`${sub} takes no --user`);
  if (sub !== "put") {
    const stray = profileFlags.find((f) => values[f] !== undefined);
    if (stray) throw new UsageError(`--${stray} goes with put`);
  }
  if (sub !== "list" && values.limit !== undefined) throw new UsageError("--limit goes with list");
  let limit = listDefaultLimit;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError("--limit expects a positive integer");
  }
  const data = dataFlags(values.data ?? []);

  const client = createRecipientClient({
    address: values.addr ?? env.HERALD_GRPC_ADDR ?? "127.0.0.1:50051",
    apiKey: values["api-key"] ?? env.HERALD_API_KEY ?? DEV_API_KEY,
  });
  const call = { timeoutMs: 30_000 };
  try {
    if (sub === "list") {
      const profiles: RecipientProfile[] = [];
      let pageToken = "";
      do {
        const page = await client.listRecipients({ pageSize: Math.min(maxPageSize, limit - profiles.length), pageToken }, call);
        profiles.push(...page.recipients);
        pageToken = page.nextPageToken;
      } while (pageToken !== "" && profiles.length < limit);
      if (profiles.length === 0) io.err.write("no recipients\n");
      else {
        io.out.write(formatProfiles(profiles));
        if (pageToken !== "") io.err.write(`(more than ${limit}; raise --limit to see them)\n`);
      }
      return;
    }
    if (sub === "categories") {
      const { categories } = await client.listCategories({}, call);
      if (categories.length === 0) io.err.write("no categories\n");
      else io.out.write(categories.map((c) => `${toJsonString(CategorySchema, c)}\n`).join(""));
      return;
    }
    const userId = values.user!;
    if (sub === "preferences") {
      const { preferences } = await client.getPreferences({ userId }, call);
      io.out.write(`${toJsonString(PreferencesSchema, preferences!, { prettySpaces: 2 })}\n`);
      return;
    }
    if (sub === "put") {
      const res = await client.putRecipient(
        {
          recipient: {
            userId,
            email: values.email ?? "",
            phone: values.phone ?? "",
            pushTokens: values["push-token"] ?? [],
            webhookUrl: values["webhook-url"] ?? "",
            timeZone: values["time-zone"] ?? "",
            locale: values.locale ?? "",
            data,
          },
        },
        call,
      );
      io.out.write(formatProfile(res.recipient!));
      io.err.write(res.created ? "created\n" : "replaced\n");
      return;
    }
    if (sub === "erase") {
      // Every count, zeros included: "nothing was stored" is an answer worth seeing.
      const res = await client.eraseRecipient({ userId }, call);
      io.out.write(`${toJsonString(EraseRecipientResponseSchema, res, { prettySpaces: 2, alwaysEmitImplicit: true })}\n`);
      io.err.write("erased\n");
      return;
    }
    if (sub === "get") {
      io.out.write(formatProfile((await client.getRecipient({ userId }, call)).recipient!));
      return;
    }
    const res = await client.deleteRecipient({ userId }, call);
    io.out.write(formatProfile(res.recipient!));
    io.err.write("deleted\n");
  } finally {
    client.close();
  }
}
