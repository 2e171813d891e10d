import type { DefaultJobOptions } from "bullmq";

// What both BullMQ processes agree on, read once from the environment at start.
//
// Env: REDIS_URL (redis://127.0.0.1:6379), BULLMQ_QUEUE (the queue name, unique per run),
// BULLMQ_PREFIX (the key prefix, unique per run).

export function bullmqSettings(env: NodeJS.ProcessEnv = process.env) {
  const queue = env.BULLMQ_QUEUE;
  const prefix = env.BULLMQ_PREFIX;
  if (!queue || !prefix) throw new Error("BULLMQ_QUEUE and BULLMQ_PREFIX are required");
  return { redisUrl: env.REDIS_URL ?? "redis://127.0.0.1:6379", queue, prefix };
}

/**
 * Job options as a production user sets them, matched to Herald's defaults: 4 attempts in all
 * (HERALD_MAX_ATTEMPTS), exponential backoff from 1 s (HERALD_BACKOFF_BASE_MS; BullMQ's has no
 * jitter unless asked), and finished jobs trimmed so Redis does not grow without end.
 */
export const jobOptions: DefaultJobOptions = {
  attempts: 4,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
};
