import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { SMTPServer, type SMTPServerSession } from "smtp-server";
import { BehaviourQueue, waitForCount, type Behaviour, type SmtpStage } from "./behaviour.js";

// A local SMTP server (smtp-server) that records every message it accepts, parsed, and answers
// each message (each MAIL FROM) from the behaviour queue: ok; fail(code, text) at RCPT TO by
// default (or { ...fail(421, "..."), at: "mail" | "data" }); hang, close and delay at MAIL FROM.
// No TLS (STARTTLS is not offered), so AUTH runs in the clear: tests only.

export interface SmtpStandInOptions {
  /** Require AUTH with these credentials (535 otherwise); no AUTH when absent. */
  auth?: { user: string; pass: string };
}

export interface ReceivedEmail {
  /** The message as received (dot-unstuffed), CRLF line ends. */
  raw: string;
  /** Top-level headers, lower-case names, unfolded, RFC 2047 words decoded; the first of repeated ones. */
  headers: Record<string, string>;
  subject: string;
  from: string;
  to: string;
  /** The first text/plain part, decoded, LF line ends; "" when there is none. */
  text: string;
  /** The first text/html part, decoded, LF line ends; "" when there is none. */
  html: string;
  messageId: string;
  envelope: { mailFrom: string; rcptTo: string[] };
  receivedAt: Date;
}

export interface SmtpStandIn {
  host: "127.0.0.1";
  port: number;
  /** Messages accepted (250 after DATA), in order. */
  messages: ReceivedEmail[];
  /** Every MAIL FROM, with the behaviour it got: counts attempts, failed ones included. */
  transactions: Array<{ mailFrom: string; behaviour: Behaviour["kind"]; status?: number; at: Date }>;
  /** Replaces the queue: the next messages get these behaviours, then `fallback` (ok). */
  behave(list: readonly Behaviour[], fallback?: Behaviour): void;
  /** Resolves once `n` messages in all were accepted; rejects after `timeoutMs` (5000). */
  waitForMessages(n: number, timeoutMs?: number): Promise<ReceivedEmail[]>;
  /** Drops every connection and stops listening. Idempotent. */
  close(): Promise<void>;
}

// ---- A small MIME reader: enough for what nodemailer writes. It handles header unfolding, RFC 2047
// encoded words (B and Q, UTF-8 or Latin-1), multipart/* with a boundary (nested), and the
// 7bit, 8bit, quoted-printable and base64 transfer encodings of UTF-8 text. Not attachments'
// file names, not other charsets, not RFC 2231 parameter continuations.

function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset: string, enc: string, text: string) => {
      const bytes = enc.toUpperCase() === "B" ? Buffer.from(text, "base64") : qpBytes(text.replace(/_/g, " "));
      return bytes.toString(/^utf-?8$/i.test(charset) ? "utf8" : "latin1");
    });
}

function qpBytes(s: string): Buffer {
  const out: number[] = [];
  const t = s.replace(/=\r?\n/g, "");
  for (let i = 0; i < t.length; i++) {
    const hex = t[i] === "=" ? t.slice(i + 1, i + 3) : "";
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(...Buffer.from(t[i] ?? "", "utf8"));
  }
  return Buffer.from(out);
}

interface MimePart {
  headers: Record<string, string>;
  body: string;
}

function splitPart(raw: string): MimePart {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : "";
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const key = line.slice(0, i).trim().toLowerCase();
    headers[key] ??= decodeWords(line.slice(i + 1).trim());
  }
  return { headers, body };
}

function leaves(part: MimePart): MimePart[] {
  const type = part.headers["content-type"] ?? "text/plain";
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (!/^multipart\//i.test(type) || !boundary) return [part];
  const sections = part.body.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?:--)?[ \\t]*\\r?\\n?`));
  // The first section is the preamble, the last the epilogue.
  return sections.slice(1, -1).flatMap((s) => leaves(splitPart(s)));
}

function decodeBody(part: MimePart): string {
  const cte = (part.headers["content-transfer-encoding"] ?? "7bit").toLowerCase();
  const text =
    cte === "base64" ? Buffer.from(part.body.replace(/\s+/g, ""), "base64").toString("utf8") : cte === "quoted-printable" ? qpBytes(part.body).toString("utf8") : part.body;
  return text.replace(/\r\n/g, "\n");
}

/** The headers and the text and html parts of an RFC 5322 message (see above for what is handled). */
export function parseEmail(raw: string): Pick<ReceivedEmail, "headers" | "subject" | "from" | "to" | "text" | "html" | "messageId"> {
  const top = splitPart(raw);
  // A message ends with a line break (nodemailer writes one after a single part's body); in a
  // multipart message the one before each boundary belongs to the boundary.
  top.body = top.body.replace(/\r?\n$/, "");
  const parts = leaves(top).filter((p) => !/^attachment/i.test(p.headers["content-disposition"] ?? ""));
  const first = (type: RegExp) => parts.find((p) => type.test(p.headers["content-type"] ?? "text/plain"));
  const text = first(/^text\/plain/i);
  const html = first(/^text\/html/i);
  const h = top.headers;
  return {
    headers: h,
    subject: h.subject ?? "",
    from: h.from ?? "",
    to: h.to ?? "",
    text: text ? decodeBody(text) : "",
    html: html ? decodeBody(html) : "",
    messageId: h["message-id"] ?? "",
  };
}

// ---- The server.

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

export async function startSmtpStandIn(opts: SmtpStandInOptions = {}): Promise<SmtpStandIn> {
  const queue = new BehaviourQueue();
  const messages: ReceivedEmail[] = [];
  const transactions: SmtpStandIn["transactions"] = [];
  const sockets = new Set<Socket>();
  const current = new Map<string, Behaviour>(); // session id → this message's behaviour
  const waiters = new Set<() => void>();

  const socketOf = (session: SMTPServerSession) => [...sockets].find((s) => s.remotePort === session.remotePort);

  /** Resolves to continue, rejects with the SMTP error to send; never settles for a hang. */
  async function at(stage: SmtpStage, session: SMTPServerSession, b: Behaviour | undefined): Promise<void> {
    if (!b) return;
    switch (b.kind) {
      case "ok":
        return;
      case "fail":
        if ((b.at ?? "rcpt") === stage) throw smtpError(b.status, typeof b.body === "string" ? b.body : `Error ${b.status} (stand-in)`);
        return;
      case "delay":
        if (stage !== "mail") return at(stage, session, b.then);
        await sleep(b.ms);
        current.set(session.id, b.then);
        return at(stage, session, b.then);
      case "hang":
        if (stage === "mail") await new Promise<never>(() => {});
        return;
      case "close":
        if (stage === "mail") socketOf(session)?.destroy();
        await new Promise<never>(() => {});
    }
  }
  const step = (stage: SmtpStage, session: SMTPServerSession, callback: (err?: Error | null) => void) => {
    at(stage, session, current.get(session.id)).then(() => callback(), (err: Error) => callback(err));
  };

  const server = new SMTPServer({
    name: "stand-in.herald.test",
    authOptional: !opts.auth,
    authMethods: ["PLAIN", "LOGIN"],
    allowInsecureAuth: true,
    hideSTARTTLS: true,
    disableReverseLookup: true,
    logger: false,
    onAuth(auth, _session, callback) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return callback(null, { user: auth.username });
      callback(smtpError(535, "Authentication credentials invalid"));
    },
    onMailFrom(address, session, callback) {
      const b = queue.next();
      current.set(session.id, b);
      const status = b.kind === "fail" ? b.status : undefined;
      transactions.push({ mailFrom: address.address, behaviour: b.kind, status, at: new Date() });
      step("mail", session, callback);
    },
    onRcptTo(_address, session, callback) {
      step("rcpt", session, callback);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        at("data", session, current.get(session.id)).then(() => {
          const raw = Buffer.concat(chunks).toString("utf8");
          const { envelope } = session;
          messages.push({
            raw,
            ...parseEmail(raw),
            envelope: { mailFrom: envelope.mailFrom ? envelope.mailFrom.address : "", rcptTo: envelope.rcptTo.map((r) => r.address) },
            receivedAt: new Date(),
          });
          for (const wake of waiters) wake();
          callback(null, `queued as ${messages.length}`);
        }, (err: Error) => callback(err));
      });
    },
    onClose(session) {
      current.delete(session.id);
    },
  });
  server.server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("error", () => {}); // a client dropping mid-command is what some tests do
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.server.address();
  if (address === null || typeof address === "string") throw new Error("smtp stand-in: no port");
  let closing: Promise<void> | undefined;

  return {
    host: "127.0.0.1",
    port: address.port,
    messages,
    transactions,
    behave: (list, fallback) => queue.set(list, fallback),
    waitForMessages: (n, timeoutMs = 5000) => waitForCount(messages, waiters, n, timeoutMs, "smtp stand-in accepted", "messages"),
    close() {
      // smtp-server waits up to 30 s for open connections (a pooled client keeps one); drop them.
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
