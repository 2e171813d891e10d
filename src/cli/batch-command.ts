import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { fromJson, toJsonString, type JsonValue } from "@bufbuild/protobuf";
import { BatchItemSchema, BatchResultSchema, type BatchItem } from "../../gen/herald/v1/notification_service_pb.js";
import type { HeraldClient } from "../client/index.js";
import { UsageError } from "./usage-error.js";

// `herald send --batch FILE`: a JSON Lines file of requests sent with CreateBatch, 1,000 items per
// call. A line is a BatchItem in proto JSON ({"create": {...}}, {"schedule": {...}},
// {"notify": {...}}), or a bare CreateRequest ({"notification": {...}}) for the common case.
// Prints one BatchResult per line, in the file's order, and a count on stderr; exits 1 when an
// item was refused, so a script notices.

export const batchUsage = `  herald send --batch FILE.jsonl   one request per line (a BatchItem, or a CreateRequest), sent with
                                 CreateBatch 1,000 at a time; prints one result per line
`;

const perCall = 1000;

/** The file's items; a line that is not one names its line number. */
async function* items(path: string): AsyncGenerator<BatchItem> {
  const lines = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === "") continue;
    try {
      const json = JSON.parse(line) as JsonValue;
      const item = json !== null && typeof json === "object" && !Array.isArray(json) && "notification" in json ? { create: json } : json;
      yield fromJson(BatchItemSchema, item);
    } catch (err) {
      throw new UsageError(`--batch ${path}:${n}: not a BatchItem or CreateRequest in proto JSON: ${(err as Error).message}`);
    }
  }
}

export async function sendBatchFile(
  client: HeraldClient,
  path: string,
  opts: { headers?: HeadersInit; out: { write(s: string): unknown }; err: { write(s: string): unknown } },
): Promise<{ stored: number; refused: number }> {
  let stored = 0;
  let refused = 0;
  let chunk: BatchItem[] = [];
  const send = async (): Promise<void> => {
    if (chunk.length === 0) return;
    const res = await client.createBatch({ items: chunk }, { headers: opts.headers, timeoutMs: 60_000 });
    for (const r of res.results) {
      if (r.result.case === "error") refused++;
      else stored++;
      opts.out.write(`${toJsonString(BatchResultSchema, r)}\n`);
    }
    chunk = [];
  };
  for await (const item of items(path)) {
    chunk.push(item);
    if (chunk.length === perCall) await send();
  }
  await send();
  opts.err.write(`${stored} stored, ${refused} refused\n`);
  return { stored, refused };
}
