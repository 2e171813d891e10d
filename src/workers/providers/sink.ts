import { createHash, randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createTransport } from "nodemailer";
import { Channel } from "../../../gen/herald/v1/notification_pb.js";
import { channelName } from "../../kafka/topics.js";
import type { Logger } from "../../log.js";
import { excerpt } from "./failure-text.js";
import { PermanentError, TransientError } from "../../errors.js";
import { type Provider, type RenderedMessage } from "./provider.js";
import { emailFields } from "./smtp.js";

// The developer default for every channel: each delivery becomes a file, so a newcomer sees
// messages arrive with no provider account. <dir>/<channel>/<notification id>.eml for email (the
// RFC 5322 message nodemailer would send over SMTP, same headers), .json for the others. A file
// appears whole (temp file + rename) and a repeat overwrites it: delivering twice is one file.

/** The From of sink emails: there is no sender to configure for the sink. */
export const SINK_FROM = "Herald <herald@localhost>";

export interface SinkOptions {
  /** The sink's root folder; one subfolder per channel is created on first use. */
  dir: string;
  channel: Channel;
  log: Logger;
}

/** What the .json of a non-email delivery holds. */
export interface SinkRecord {
  notificationId: string;
  tenant: string;
  channel: string;
  /** `{ userId, <address kind>: <address> }`, e.g. `{ userId: "u-1", phone: "+14155550100" }`. */
  recipient: Record<string, string>;
  subject: string;
  text: string;
  html: string;
  data: Record<string, string>;
  labels: Record<string, string>;
  attempt: number;
  idempotencyKey: string;
}

export function sinkRecord(message: RenderedMessage, channel: string): SinkRecord {
  const { userId, address } = message.recipient;
  return {
    notificationId: message.notificationId,
    tenant: message.tenant,
    channel,
    recipient: address.case ? { userId, [address.case]: address.value } : { userId },
    subject: message.subject,
    text: message.text,
    html: message.html,
    data: message.data,
    labels: message.labels,
    attempt: message.attempt,
    idempotencyKey: message.idempotencyKey,
  };
}

/** A file name that cannot leave the folder: ids are UUIDs; anything else is hashed. */
function baseName(id: string): string {
  return /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/.test(id) ? id : `h-${createHash("sha256").update(id).digest("hex").slice(0, 40)}`;
}

export function createSinkProvider(opts: SinkOptions): Provider {
  const channel = channelName(opts.channel);
  const folder = resolve(opts.dir, channel);
  // Builds the message only; nothing is sent anywhere.
  const composer = opts.channel === Channel.EMAIL ? createTransport({ streamTransport: true, buffer: true, newline: "windows" }) : undefined;
  let closed = false;
  // Made once, and again only if it disappears (someone cleaned up var/deliveries).
  let folderReady: Promise<unknown> | undefined;
  const ensureFolder = () => (folderReady ??= mkdir(folder, { recursive: true }).catch((err: unknown) => {
    folderReady = undefined;
    throw err;
  }));

  async function render(message: RenderedMessage): Promise<{ ext: string; content: Buffer | string }> {
    if (!composer) return { ext: "json", content: `${JSON.stringify(sinkRecord(message, channel), null, 2)}\n` };
    const info = await composer.sendMail(emailFields(message, SINK_FROM));
    if (!Buffer.isBuffer(info.message)) throw new Error("nodemailer did not buffer the message");
    return { ext: "eml", content: info.message };
  }

  return {
    name: "sink",
    async send(message, signal) {
      if (closed) throw new TransientError("sink: provider is closed");
      const { ext, content } = await render(message).catch((err: unknown) => {
        if (err instanceof PermanentError) throw err;
        throw new TransientError(`sink: cannot build the message: ${excerpt(String(err))}`, { cause: err });
      });
      const file = join(folder, `${baseName(message.notificationId)}.${ext}`);
      const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
      try {
        await ensureFolder();
        await writeFile(tmp, content, { signal }).catch(async (err: unknown) => {
          if ((err as { code?: string }).code !== "ENOENT") throw err;
          folderReady = undefined; // the folder went away: make it again, once
          await ensureFolder();
          await writeFile(tmp, content, { signal });
        });
        await rename(tmp, file);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => {});
        if (signal.aborted) throw new TransientError("sink: canceled before the file was written", { cause: err });
        throw new TransientError(`sink: cannot write ${file}: ${excerpt((err as Error).message)}`, { cause: err });
      }
      // Debug: the worker already logs every send at info, with this file as the provider's message id.
      opts.log.debug({ channel, notificationId: message.notificationId, file }, "delivery written to the local sink");
      return { providerMessageId: `sink:${file}` };
    },
    async close() {
      closed = true;
      composer?.close();
    },
  };
}
