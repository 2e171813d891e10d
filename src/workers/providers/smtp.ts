import { createHash } from "node:crypto";
import { createTransport, type SendMailOptions } from "nodemailer";
import type { NodemailerError } from "nodemailer/lib/errors";
import type { EmailProviderConfig } from "../../config-delivery.js";
import type { Logger } from "../../log.js";
import { deadline, type Deadline } from "./deadline.js";
import { excerpt, NETWORK_FAILURES } from "./failure-text.js";
import { createInFlightSends } from "./in-flight.js";
import { PermanentError, TransientError } from "../../errors.js";
import { type ListUnsubscribe, type Provider, type RenderedMessage } from "./provider.js";

// Email over SMTP with nodemailer's pooled transport. The SMTP reply decides the class
// (RFC 5321 §4.2.1): 4yz transient, 5yz permanent, except 503 (bad sequence of commands: the
// session was in the wrong state, a new connection may succeed), as nodemailer's err.permanent says.

export type SmtpConfig = Extract<EmailProviderConfig, { kind: "smtp" }>;

/**
 * The Message-ID for an idempotency key: the same on every attempt, so a mail system that has
 * seen it can drop the repeat. A key that is not a safe id-left (RFC 5322 §3.6.4) is hashed.
 */
export function messageIdFor(key: string): string {
  const left = /^[A-Za-z0-9._-]{1,200}$/.test(key) ? key : `h-${createHash("sha256").update(key).digest("hex").slice(0, 40)}`;
  return `<${left}@herald>`;
}

/** The message fields every email gets, over SMTP or into the sink. */
export function emailFields(message: RenderedMessage, from: string): SendMailOptions {
  const { address } = message.recipient;
  if (address.case !== "email") throw new PermanentError(`email: the recipient has no email address (got ${address.case ?? "none"})`);
  return {
    from,
    to: address.value,
    subject: message.subject,
    // html only when there is some; an empty text part only when there is nothing else.
    text: message.text || (message.html ? undefined : ""),
    html: message.html || undefined,
    messageId: messageIdFor(message.idempotencyKey),
    headers: {
      "X-Herald-Notification-Id": message.notificationId,
      // SendGrid's unique_args come back in every event of this message (src/receipts/sendgrid.ts):
      // they bind an event to its notification and tenant. Other relays ignore the header.
      "X-SMTPAPI": smtpApiHeader(message),
      ...(message.listUnsubscribe ? listUnsubscribeHeaders(message.listUnsubscribe) : {}),
    },
  };
}

/**
 * RFC 8058 one-click unsubscribe: List-Unsubscribe (RFC 2369) with the HTTPS link first, and
 * List-Unsubscribe-Post, which tells the mailbox provider it may POST `List-Unsubscribe=One-Click`
 * to that link itself (Gmail's and Yahoo's "Unsubscribe" button). For them to trust it, the DKIM
 * signature must cover both headers: the relay's signing (SendGrid's, for instance) does.
 */
export function listUnsubscribeHeaders(l: ListUnsubscribe): Record<string, string> {
  return {
    "List-Unsubscribe": [l.url, ...(l.mailto ? [l.mailto] : [])].map((u) => `<${u}>`).join(", "),
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
  };
}

/** SendGrid's X-SMTPAPI header: unique_args naming the notification and its tenant. */
export function smtpApiHeader(message: Pick<RenderedMessage, "notificationId" | "tenant">): string {
  return JSON.stringify({ unique_args: { herald_notification_id: message.notificationId, herald_tenant: message.tenant } });
}

// Failures that are about the configuration or the message, not the moment.
const PERMANENT_CODES = new Set(["EENVELOPE", "ECONFIG", "ENOAUTH", "EAUTH", "EMAXRECIPIENTS"]);

function smtpFailure(err: unknown, d: Deadline, secrets: readonly string[]): Error {
  const aborted = d.abortError("smtp", err);
  if (aborted) return aborted;
  const e = (err ?? {}) as NodemailerError;
  if (typeof e.responseCode === "number") {
    const said = `smtp: ${e.command ? `${excerpt(e.command, secrets, 40)} refused: ` : ""}${excerpt(e.response ?? e.message, secrets)}`;
    return e.permanent === true || (e.permanent === undefined && e.responseCode >= 500 && e.responseCode !== 503)
      ? new PermanentError(said, { cause: err })
      : new TransientError(said, { cause: err });
  }
  const code = e.originalCode ?? e.code;
  const what = (code && NETWORK_FAILURES[code]) ?? excerpt(e.message ?? String(err), secrets);
  const said = `smtp: ${what}${code ? ` (${code})` : ""}`;
  return e.code && PERMANENT_CODES.has(e.code) ? new PermanentError(said, { cause: err }) : new TransientError(said, { cause: err });
}

export interface SmtpDeps {
  log: Logger;
}

export function createSmtpProvider(config: SmtpConfig, deps: SmtpDeps): Provider {
  const secrets = config.password ? [config.password] : [];
  const transport = createTransport({
    pool: true,
    host: config.host,
    port: config.port,
    secure: config.secure,
    auth: config.user ? { user: config.user, pass: config.password } : undefined,
    connectionTimeout: config.timeoutMs,
    greetingTimeout: config.timeoutMs,
    socketTimeout: config.timeoutMs,
    // One quick retry on a fresh connection covers a pooled connection the server dropped while
    // idle (nodemailer requeues only when not a byte of the message was sent); anything more is
    // the worker's retry, with backoff.
    maxRequeues: 1,
    // Messages carry no attachments; nothing may make the mailer read files or fetch URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  transport.on("error", (err: Error) => deps.log.warn({ err: excerpt(err.message, secrets) }, "smtp transport error"));

  const sends = createInFlightSends("smtp");
  let closing: Promise<void> | undefined;

  async function deliver(message: RenderedMessage, caller: AbortSignal) {
    const fields = emailFields(message, config.from);
    const d = deadline(caller, config.timeoutMs);
    try {
      const info = await transport.sendMail({ ...fields, signal: d.signal });
      return { providerMessageId: info.messageId };
    } catch (err) {
      throw smtpFailure(err, d, secrets);
    } finally {
      d.dispose();
    }
  }

  return {
    name: config.name ?? "smtp",
    send: (message, signal) => sends.run(() => deliver(message, signal)),
    close() {
      // Drain first: closing the pool fails whatever is still queued in it.
      closing ??= sends.close().then(() => transport.close());
      return closing;
    },
  };
}
