import { UnrecoverableError, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { bullmqSettings } from "./bullmq-options.js";
import { createSmsSender, PermanentSendError, type NotifyBody } from "./twilio-client.js";

// The delivery side of the BullMQ pipeline: `concurrency` jobs in flight, each one SMS through the
// provider with the job id as idempotency token. A permanent refusal stops retries
// (UnrecoverableError); anything else is retried with the queue's backoff.
//
// Env: BULLMQ_CONCURRENCY (32, as HERALD_WORKER_CONCURRENCY), TWILIO_BASE_URL, TWILIO_ACCOUNT_SID,
// TWILIO_AUTH_TOKEN, SMS_FROM and the BullMQ settings. Prints "bullmq worker started" once ready,
// and its counts when it stops.

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const settings = bullmqSettings();
const concurrency = Number(process.env.BULLMQ_CONCURRENCY ?? 32);
const send = createSmsSender({ baseUrl: env("TWILIO_BASE_URL"), accountSid: env("TWILIO_ACCOUNT_SID"), authToken: env("TWILIO_AUTH_TOKEN"), from: env("SMS_FROM") });

async function deliver(job: Job<NotifyBody>): Promise<{ sid: string }> {
  try {
    return { sid: await send({ to: job.data.to, text: job.data.text, idempotencyKey: String(job.id) }) };
  } catch (err) {
    if (err instanceof PermanentSendError) throw new UnrecoverableError(err.message);
    throw err;
  }
}

// A Worker's connection blocks (BRPOPLPUSH-style waits): BullMQ requires maxRetriesPerRequest null.
const connection = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
const counts = { completed: 0, failed: 0 };
const worker = new Worker<NotifyBody, { sid: string }>(settings.queue, deliver, { connection, prefix: settings.prefix, concurrency });
worker.on("completed", () => void counts.completed++);
worker.on("failed", () => void counts.failed++);
worker.on("error", (err) => console.error(`bullmq worker error: ${err.message}`));
await worker.waitUntilReady();
console.log(`bullmq worker started (concurrency ${concurrency})`);

process.once("SIGTERM", () => {
  // close() waits for the jobs in flight before it disconnects.
  void worker.close().then(async () => {
    console.log(`bullmq worker stopped ${JSON.stringify(counts)}`);
    await connection.quit();
  });
});
