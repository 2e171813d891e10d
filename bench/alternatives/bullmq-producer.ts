import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { readBody, sendJson } from "./http.js";
import { parseNotify } from "./twilio-client.js";
import { bullmqSettings, jobOptions } from "./bullmq-options.js";

// The producer API of the same pipeline built on BullMQ: POST /notify validates the body, adds an
// "sms" job, and answers 200 with the job id. The job lives only in Redis from here on.
//
// Env: PORT (0) and the BullMQ settings (bullmq-options.ts). Prints "listening <port>".

const settings = bullmqSettings();
const connection = new Redis(settings.redisUrl);
const queue = new Queue(settings.queue, { connection, prefix: settings.prefix, defaultJobOptions: jobOptions });
await queue.waitUntilReady();

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.method !== "POST" || req.url !== "/notify") return sendJson(res, 404, { error: "not found" });
  void (async () => {
    const raw = await readBody(req);
    if (raw === undefined) return sendJson(res, 413, { error: "body: larger than 64 KiB" });
    const body = parseNotify(raw);
    if ("error" in body) return sendJson(res, 400, body);
    const job = await queue.add("sms", body);
    sendJson(res, 200, { id: job.id });
  })().catch(() => {
    if (!res.headersSent) sendJson(res, 503, { error: "queue unavailable" });
  });
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => console.log(`listening ${(server.address() as AddressInfo).port}`));

process.once("SIGTERM", () => {
  server.close(() => void queue.close().then(() => connection.quit()));
  server.closeIdleConnections();
});
