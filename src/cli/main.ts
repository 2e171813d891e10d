// The CLI proper: parses the command and runs it. Imported by the process entry, src/cli.ts, once
// tracing (if configured) is in place.
import { ConnectError } from "@connectrpc/connect";
import { parseArgs } from "node:util";
import { ConfigError } from "../config-env.js";
import { channelNames, type ChannelName } from "../domain/channels.js";
import { hashApiKey } from "../domain/api-keys.js";
import { runRoles } from "./run-roles.js";
import { runClientCommand } from "./client-commands.js";
import { UsageError } from "./usage-error.js";
import { dlqUsage, runDlqCommand } from "./dlq-commands.js";
import { runSuppressionsCommand, suppressionsUsage } from "./suppression-commands.js";
import { recipientUsage, runRecipientCommand } from "./recipient-commands.js";
import { notifyUsage, runNotifyCommand } from "./notify-command.js";
import { batchUsage } from "./batch-command.js";
import { runWatchCommand, watchUsage } from "./watch-command.js";
import { configUsage, runConfigCommand } from "./config-command.js";
import { runStatusCommand, statusUsage } from "./status-command.js";
import { keysUsage, runKeysCommand } from "./keys-commands.js";

const usage = () => `herald — a notification service

Roles (long-running processes; configuration from the environment, see README):
  herald dev                     every role in one process, dev API key accepted
  herald server                  the API: gRPC (HERALD_GRPC_ADDR) and Connect/HTTP (HERALD_HTTP_ADDR)
  herald relay                   publishes the outbox to Kafka
  herald scheduler               releases scheduled and retrying notifications
  herald worker --channel C      delivers channel C: email, sms, push, webhook, a comma list, or all

Client commands (over gRPC; --addr, --api-key or HERALD_GRPC_ADDR, HERALD_API_KEY):
  herald send --channel email --to ada@example.com [--user ID] [--subject S] [--text T] [--html H]
              [--template ID --var k=v ... [--locale de-AT]] [--label k=v ...] [--priority high]
              [--category C] [--idempotency-key K]
${batchUsage}${notifyUsage}  herald schedule (same as send) --in 10m | --at +1h | --at 2030-01-01T09:00:00Z
              | --local 2030-01-01T09:00:00 --tz Europe/Berlin      (durations: s, m, h, d; 1h30m)
  herald get ID
  herald cancel ID
${watchUsage}
Operator commands:
${statusUsage}  herald hash-key KEY            prints the sha256 form of an API key for HERALD_API_KEYS
${configUsage}
${keysUsage}${dlqUsage}${suppressionsUsage}${recipientUsage}`;

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case "dev":
    case "server":
    case "relay":
    case "scheduler":
      return runRoles(command, process.env);
    case "worker":
      return runRoles("worker", process.env, { channels: workerChannels(args) });
    case "dlq":
      return runDlqCommand(args, process.env);
    case "suppressions":
      return runSuppressionsCommand(args, process.env);
    case "recipient":
      return runRecipientCommand(args, process.env);
    case "notify":
      return runNotifyCommand(args, process.env);
    case "watch":
      process.exitCode = await runWatchCommand(args, process.env);
      return;
    case "status":
      return runStatusCommand(args, process.env);
    case "keys":
      process.exitCode = await runKeysCommand(args, process.env);
      return;
    case "config":
      return runConfigCommand(args, process.env, { out: process.stdout, err: process.stderr });
    case "hash-key":
      if (!args[0]) throw new UsageError("usage: herald hash-key KEY");
      console.log(`sha256:${hashApiKey(args[0])}`);
      return;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(usage());
      return;
    default:
      return runClientCommand(command, args, process.env);
  }
}

/** `--channel email`, `--channel email,sms`, `--channel email --channel sms`, or `--channel all`. */
function workerChannels(args: string[]): ChannelName[] {
  const { values } = parseArgs({ args, options: { channel: { type: "string", multiple: true } }, strict: true });
  const requested = (values.channel ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
  if (requested.length === 0) throw new UsageError(`usage: herald worker --channel ${channelNames.join("|")}|all`);
  if (requested.includes("all")) return [...channelNames];
  for (const name of requested) {
    if (!(channelNames as readonly string[]).includes(name)) {
      throw new UsageError(`--channel: expected ${channelNames.join(", ")} or all; got "${name}"`);
    }
  }
  return [...new Set(requested as ChannelName[])];
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError || err instanceof ConfigError || (err as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    console.error(`herald: ${(err as Error).message}\n\n${usage()}`);
    process.exitCode = 2;
  } else if (err instanceof ConnectError) {
    console.error(`herald: ${err.code !== undefined ? err.message : String(err)}`);
    process.exitCode = 1;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
});
