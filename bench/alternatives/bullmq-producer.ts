import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { readNotify, sendJson } from "./http.js";
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
  void (async () => {
    const body = await readNotify(req, res);
    if (!body) return;
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
