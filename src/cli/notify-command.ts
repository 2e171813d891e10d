import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { Priority } from "../../gen/herald/v1/notification_pb.js";
import { NotifyRequestSchema, NotifyResponseSchema, type NotifyRequest } from "../../gen/herald/v1/notification_service_pb.js";
import { channelFromName } from "../kafka/topics.js";
import { clientFrom, common, headers, pairs } from "./client-commands.js";
import { UsageError } from "./usage-error.js";

// `herald notify`: one event for one recipient (Notify), from flags or, for per-channel bodies,
// from a NotifyRequest in proto JSON. Prints the answer: what was created and what was skipped.

export const notifyUsage = `  herald notify --user ID [--category C] [--channel email,sms ...] [--subject S] [--text T] [--html H]
              [--template ID --var k=v ...] [--label k=v ...] [--priority high] [--idempotency-key K]
  herald notify --request FILE   a NotifyRequest in proto JSON (channel_bodies: a body per channel)
`;

const options = {
  ...common,
  user: { type: "string" },
  category: { type: "string" },
  channel: { type: "string", multiple: true },
  subject: { type: "string" },
  text: { type: "string" },
  html: { type: "string" },
  template: { type: "string" },
  var: { type: "string", multiple: true },
  label: { type: "string", multiple: true },
  priority: { type: "string" },
  "idempotency-key": { type: "string" },
  request: { type: "string" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; strict: true }>>["values"];

/** The request the flags describe; the server checks every field. */
export function notifyRequestFrom(v: Values): NotifyRequest {
  if (!v.user) throw new UsageError("--user is required (the recipient's user id; store the profile with `herald recipient put`)");
  const channels = (v.channel ?? []).flatMap((c) => c.split(",")).map((c) => c.trim()).filter(Boolean).map((name) => {
    const channel = channelFromName(name);
    if (channel === undefined) throw new UsageError(`--channel must be email, sms, push or webhook, got "${name}"`);
    return channel;
  });
  const priority = v.priority ? Priority[v.priority.toUpperCase() as keyof typeof Priority] : Priority.UNSPECIFIED;
  if (priority === undefined) throw new UsageError("--priority must be low, normal or high");
  return create(NotifyRequestSchema, {
    userId: v.user,
    category: v.category ?? "",
    channels,
    body: v.template
      ? { case: "template", value: { templateId: v.template, variables: pairs(v.var, "var") } }
      : { case: "content", value: { subject: v.subject ?? "", text: v.text ?? "", html: v.html ?? "" } },
    priority,
    labels: pairs(v.label, "label"),
    idempotencyKey: v["idempotency-key"] ?? "",
  });
}

export async function runNotifyCommand(args: string[], env: NodeJS.ProcessEnv, out: { write(chunk: string): unknown } = process.stdout): Promise<void> {
  const { values } = parseArgs({ args, options, strict: true });
  let req: NotifyRequest;
  if (values.request !== undefined) {
    try {
      req = fromJsonString(NotifyRequestSchema, await readFile(values.request, "utf8"));
    } catch (err) {
      throw new UsageError(`--request ${values.request}: not a NotifyRequest in proto JSON: ${(err as Error).message}`);
    }
  } else {
    req = notifyRequestFrom(values);
  }
  const client = clientFrom(values, env);
  try {
    const res = await client.notify(req, { headers: headers(values), timeoutMs: 10_000 });
    out.write(`${toJsonString(NotifyResponseSchema, res, { prettySpaces: 2 })}\n`);
  } finally {
    client.close();
  }
}
