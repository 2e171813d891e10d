import type { MessageInitShape } from "@bufbuild/protobuf";
import { Channel, Priority } from "../../gen/herald/v1/notification_pb.js";
import type { NotifyRequestSchema } from "../../gen/herald/v1/notification_service_pb.js";

// The send form in "to a person" mode as a Notify request. Only what the form
// itself means is decided here (which boxes map to which channel, how the
// variables box is read); every rule of the request is the server's, and its
// INVALID_ARGUMENT, naming the field, is shown as it is.

export type NotifyInit = MessageInitShape<typeof NotifyRequestSchema>;

/** What the Notify form holds, as typed by the user. */
export interface NotifyFields {
  userId: string;
  /** "" for none. */
  category: string;
  /** The channel boxes ticked, by name; none means every channel the request has a body for. */
  channels: readonly string[];
  body: "content" | "template";
  subject: string;
  text: string;
  html: string;
  templateId: string;
  /** One `name=value` a line. */
  variables: string;
  /** "" (the server's default, normal), "low", "normal" or "high". */
  priority: string;
}

/** The request, or what the page cannot read in the form (said against the form's own field). */
export type NotifyForm = { ok: true; request: NotifyInit } | { ok: false; field: string; message: string };

const channels: Record<string, Channel> = { email: Channel.EMAIL, sms: Channel.SMS, push: Channel.PUSH, webhook: Channel.WEBHOOK };
const priorities: Record<string, Priority> = { "": Priority.UNSPECIFIED, low: Priority.LOW, normal: Priority.NORMAL, high: Priority.HIGH };

/**
 * The variables box: one `name=value` a line, split at the first "=" (a value
 * may hold more), blank lines skipped. The name is trimmed, the value kept as
 * typed: a template may well print a leading space the sender meant. A line
 * with no name, or a name given twice, is refused rather than guessed at: the
 * map the server receives could not show it.
 */
export function parseVariables(text: string): { ok: true; variables: Record<string, string> } | { ok: false; message: string } {
  const variables: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    const eq = line.indexOf("=");
    const name = eq < 0 ? "" : line.slice(0, eq).trim();
    if (name === "") return { ok: false, message: `line ${i + 1}: expected name=value, got ${JSON.stringify(line.slice(0, 40))}` };
    if (Object.hasOwn(variables, name)) return { ok: false, message: `line ${i + 1}: ${JSON.stringify(name)} is given twice` };
    variables[name] = line.slice(eq + 1);
  }
  return { ok: true, variables };
}

/** The Notify request for the form; `idempotencyKey` makes a resubmit of the same form safe. */
export function notifyRequest(fields: NotifyFields, idempotencyKey: string): NotifyForm {
  let body: NotifyInit["body"];
  if (fields.body === "template") {
    const parsed = parseVariables(fields.variables);
    if (!parsed.ok) return { ok: false, field: "variables", message: parsed.message };
    body = { case: "template", value: { templateId: fields.templateId, variables: parsed.variables } };
  } else {
    body = { case: "content", value: { subject: fields.subject, text: fields.text, html: fields.html } };
  }
  return {
    ok: true,
    request: {
      userId: fields.userId,
      category: fields.category,
      // In the proto's channel order whatever the order ticked, so the same choice is the same request.
      channels: fields.channels.flatMap((name) => (Object.hasOwn(channels, name) ? [channels[name]!] : [])).sort((a, b) => a - b),
      body,
      priority: priorities[fields.priority] ?? Priority.UNSPECIFIED,
      idempotencyKey,
    },
  };
}
