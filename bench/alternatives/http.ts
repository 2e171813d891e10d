import type { IncomingMessage, ServerResponse } from "node:http";
import { parseNotify, type NotifyBody } from "./twilio-client.js";

// What the alternatives' two small HTTP servers share: a bounded body read and a JSON answer.

const MAX_BODY = 64 * 1024;

/** The request body as text, or undefined when it is larger than 64 KiB. */
export async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

/**
 * The shared start of POST /notify in both alternative servers: answers 404, 413 or 400 itself
 * and returns undefined, or returns the parsed body.
 */
export async function readNotify(req: IncomingMessage, res: ServerResponse): Promise<NotifyBody | undefined> {
  if (req.method !== "POST" || req.url !== "/notify") return void sendJson(res, 404, { error: "not found" });
  const raw = await readBody(req);
  if (raw === undefined) return void sendJson(res, 413, { error: "body: larger than 64 KiB" });
  const body = parseNotify(raw);
  if ("error" in body) return void sendJson(res, 400, body);
  return body;
}
