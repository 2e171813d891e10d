import type { Consumer } from "kafkajs";
import type { Logger } from "../log.js";
import { backoffMs, type BackoffOptions } from "../loop/backoff.js";

// kafkajs restarts a crashed consumer by itself only when the error was retriable. After any
// other it has left the group and stays stopped, for good: the process looks alive (a worker, an
// API instance's status feed) and consumes nothing. Such a consumer is started again here, after
// a pause that grows while the crashes go on (full jitter; reset once it joins the group again).

export interface CrashRestart {
  /** What to start again: kafkajs' `run` with the caller's config; unset until the first run. */
  start?: () => Promise<void>;
  /** Stops any restart that is waiting. */
  stop(): void;
}

export function restartAfterFatalCrash(
  consumer: Pick<Consumer, "on" | "events">,
  opts: { group: string; log: Logger; backoff?: BackoffOptions; random?: () => number },
): CrashRestart {
  const { group, log, backoff = { baseMs: 1000, capMs: 30_000 }, random = Math.random } = opts;
  let crashes = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const self: CrashRestart = {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  consumer.on(consumer.events.GROUP_JOIN, () => (crashes = 0));
  consumer.on(consumer.events.CRASH, (e) => {
    const start = self.start;
    if (e.payload.restart || stopped || !start) return;
    const delayMs = backoffMs(++crashes, backoff, random);
    log.warn({ group, delayMs, crashes }, "kafka consumer stopped after an error kafkajs does not retry; starting it again");
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (stopped) return;
      start().catch((err: unknown) => log.error({ err, group }, "starting the kafka consumer again failed"));
    }, delayMs);
  });
  return self;
}
