import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { ChannelOptions } from "@grpc/grpc-js";
import { createHeraldClient } from "../client/index.js";
import { Channel, Priority, NotificationSpecSchema, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import { CreateResponseSchema, GetResponseSchema, CancelResponseSchema, ScheduleResponseSchema } from "../../gen/herald/v1/notification_service_pb.js";
import { channelFromName } from "../kafka/topics.js";
import { DEV_API_KEY } from "../domain/api-keys.js";
import { scheduleWhen } from "./schedule-time.js";
import { UsageError } from "./usage-error.js";
import { sendBatchFile } from "./batch-command.js";

// `herald send|schedule|get|cancel`: the CLI as a grpc-js client of a running server.

export const common = {
  addr: { type: "string" },
  "api-key": { type: "string" },
  "request-id": { type: "string" },
} as const;

const specOptions = {
  ...common,
  channel: { type: "string", default: "email" },
  user: { type: "string", default: "cli-user" },
  to: { type: "string" },
  subject: { type: "string" },
  text: { type: "string" },
  html: { type: "string" },
  template: { type: "string" },
  var: { type: "string", multiple: true },
  locale: { type: "string" },
  label: { type: "string", multiple: true },
  priority: { type: "string" },
  category: { type: "string" },
  "idempotency-key": { type: "string" },
  batch: { type: "string" },
} as const;

export function pairs(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const i = item.indexOf("=");
    if (i <= 0) throw new UsageError(`--${flag} expects key=value, got "${item}"`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

type SpecValues = { [K in keyof typeof specOptions]?: string | string[] | undefined | boolean };

function specFrom(v: SpecValues): NotificationSpec {
  const channel = channelFromName(String(v.channel));
  if (channel === undefined) throw new UsageError(`--channel must be email, sms, push or webhook`);
  if (!v.to) throw new UsageError("--to is required (an email, phone, device token or URL, matching --channel)");
  const to = String(v.to);
  const address =
    channel === Channel.EMAIL ? { case: "email" as const, value: to }
    : channel === Channel.SMS ? { case: "phone" as const, value: to }
    : channel === Channel.PUSH ? { case: "deviceToken" as const, value: to }
    : { case: "webhookUrl" as const, value: to };
  const priority = v.priority ? Priority[String(v.priority).toUpperCase() as keyof typeof Priority] : Priority.UNSPECIFIED;
  if (priority === undefined) throw new UsageError("--priority must be low, normal or high");
  return create(NotificationSpecSchema, {
    channel,
    recipient: { userId: String(v.user), address },
    body: v.template
      ? { case: "template", value: { templateId: String(v.template), variables: pairs(v.var as string[], "var") } }
      : { case: "content", value: { subject: (v.subject as string) ?? "", text: (v.text as string) ?? "", html: (v.html as string) ?? "" } },
    priority,
    labels: pairs(v.label as string[], "label"),
    category: (v.category as string) ?? "",
    // Checked and made canonical by the server, which names the field when it is not a tag.
    locale: (v.locale as string | undefined) ?? "",
  });
}

/** Where a client command connects and with which key: the flags, else the environment, else the local defaults. */
export function clientOptions(v: { addr?: string | undefined; "api-key"?: string | undefined }, env: NodeJS.ProcessEnv) {
  return {
    address: v.addr ?? env.HERALD_GRPC_ADDR ?? "127.0.0.1:50051",
    apiKey: v["api-key"] ?? env.HERALD_API_KEY ?? DEV_API_KEY,
  };
}

export function clientFrom(
  v: { addr?: string | undefined; "api-key"?: string | undefined },
  env: NodeJS.ProcessEnv,
  channelOptions?: ChannelOptions,
) {
  return createHeraldClient({ ...clientOptions(v, env), ...(channelOptions ? { channelOptions } : {}) });
}

export function headers(v: { "request-id"?: string | undefined }): HeadersInit | undefined {
  return v["request-id"] ? { "x-request-id": v["request-id"] } : undefined;
}

/** Runs one client command and prints the response as JSON. */
export async function runClientCommand(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  switch (command) {
    case "send": {
      const { values } = parseArgs({ args, options: specOptions, strict: true });
      const client = clientFrom(values, env);
      try {
        if (values.batch !== undefined) {
          const { refused } = await sendBatchFile(client, values.batch, { headers: headers(values), out: process.stdout, err: process.stderr });
          if (refused > 0) process.exitCode = 1;
          return;
        }
        const res = await client.create(
          { notification: specFrom(values), idempotencyKey: values["idempotency-key"] ?? "" },
          { headers: headers(values), timeoutMs: 10_000 },
        );
        console.log(toJsonString(CreateResponseSchema, res, { prettySpaces: 2 }));
      } finally {
        client.close();
      }
      return;
    }
    case "schedule": {
      const { values } = parseArgs({
        args,
        options: { ...specOptions, in: { type: "string" }, at: { type: "string" }, local: { type: "string" }, tz: { type: "string" } },
        strict: true,
      });
      const when = scheduleWhen(values, new Date());
      const client = clientFrom(values, env);
      try {
        const res = await client.schedule(
          { notification: specFrom(values), idempotencyKey: values["idempotency-key"] ?? "", when },
          { headers: headers(values), timeoutMs: 10_000 },
        );
        console.log(toJsonString(ScheduleResponseSchema, res, { prettySpaces: 2 }));
      } finally {
        client.close();
      }
      return;
    }
    case "get":
    case "cancel": {
      const { values, positionals } = parseArgs({ args, options: common, allowPositionals: true, strict: true });
      const id = positionals[0];
      if (!id) throw new UsageError(`usage: herald ${command} ID`);
      const client = clientFrom(values, env);
      try {
        if (command === "get") {
          const res = await client.get({ id }, { headers: headers(values), timeoutMs: 10_000 });
          console.log(toJsonString(GetResponseSchema, res, { prettySpaces: 2 }));
        } else {
          const res = await client.cancel({ id }, { headers: headers(values), timeoutMs: 10_000 });
          console.log(toJsonString(CancelResponseSchema, res, { prettySpaces: 2 }));
        }
      } finally {
        client.close();
      }
      return;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}
