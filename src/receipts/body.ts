import type { NodeRequest } from "../health/route.js";

/** The body was larger than allowed: answered 413. */
export class BodyTooLargeError extends Error {}

/** Reads a request body whole, up to `maxBytes` (a receipt batch is small; anything bigger is refused unread). */
export async function readBody(req: NodeRequest, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > maxBytes) throw new BodyTooLargeError(`request body over ${maxBytes} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}
