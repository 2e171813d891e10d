import type { Inc } from "../metrics/api.js";

// Admission at the door: whether a Create or Schedule is refused before the server spends
// anything on it (no authentication, no decoding, no validation, no abort signal).
//
// Two reasons. The accept queue would refuse it anyway (full, or the call's deadline shorter
// than the queue's wait): src/store/group-commit.ts decides, this only asks earlier. Or the
// event loop is late: then the server's own CPU is the bottleneck, the accept queue stays short
// (PostgreSQL keeps up), and the queue that grows is the one no code sees: calls waiting in
// socket buffers to be read. Each of them costs the full price of a Create when it is finally
// read, often after its client has given up (its deadline passed and it reset the stream), so
// goodput collapses. Refusing at the door while the loop is late costs a few microseconds a
// call and lets the loop catch up; calls admitted meanwhile are answered within their deadline.

export interface Admission {
  /** The retry hint in ms if a call with `timeLeftMs` to wait is refused at once, else undefined. */
  refuse(timeLeftMs: number | undefined): number | undefined;
  /** Stops the lag sampler. Idempotent. */
  close(): void;
  /** Whether the lag sampler runs now (it stops after a quiet spell; for tests). */
  sampling(): boolean;
}

export interface AdmissionOptions {
  /** The accept queue's own verdict (NotificationStore.acceptRefusal). */
  queueRefusal(timeLeftMs: number | undefined): number | undefined;
  /** Event-loop lag beyond which new calls are refused; 0 turns the lag check off. */
  maxLagMs: number;
  /** Counts the calls refused for lag (herald_admission_rejected_total{reason="event_loop_lag"}); the queue counts its own. */
  rejectedForLag?: Inc;
}

/** How often the loop's lag is sampled: fine enough to follow an overload, cheap enough to ignore. */
const SAMPLE_MS = 10;
/**
 * The lag that counts is the least of the last 20 samples (CoDel's rule: a standing queue, not a
 * burst): one late timer (a GC pause, the process descheduled on a shared machine) refuses nothing.
 */
const WINDOW = 20;
/**
 * Samples taken with no call asked about before the sampler stops: a hundred wake-ups a second
 * are cheap under load and the whole of an idle server's CPU. The first call after a quiet spell
 * starts it again, with a clean window (an idle loop is not late), so a standing lag is seen
 * WINDOW samples later, as it would be if the sampler had never stopped.
 */
const IDLE_SAMPLES = 100;

export function createAdmission(opts: AdmissionOptions): Admission {
  let lagMs = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let quiet = 0;
  const samples = new Array<number>(WINDOW).fill(0);

  function startSampler(): void {
    samples.fill(0);
    lagMs = 0;
    quiet = 0;
    // A timer that fires late by L ms means every socket read waited about L ms too.
    let i = 0;
    let expected = performance.now() + SAMPLE_MS;
    timer = setInterval(() => {
      const now = performance.now();
      samples[i++ % WINDOW] = Math.max(0, now - expected);
      lagMs = Math.min(...samples);
      expected = now + SAMPLE_MS;
      if (++quiet >= IDLE_SAMPLES) stopSampler();
    }, SAMPLE_MS);
    timer.unref();
  }

  function stopSampler(): void {
    clearInterval(timer);
    timer = undefined;
    lagMs = 0;
  }

  return {
    refuse(timeLeftMs) {
      if (opts.maxLagMs > 0 && !closed) {
        quiet = 0;
        if (!timer) startSampler();
      }
      // Hint: about the time the loop needs to catch up, spread so refused clients do not return together.
      if (lagMs > opts.maxLagMs) {
        opts.rejectedForLag?.inc();
        return Math.ceil(lagMs * (1 + Math.random()));
      }
      return opts.queueRefusal(timeLeftMs);
    },
    close() {
      closed = true;
      stopSampler();
    },
    sampling: () => timer !== undefined,
  };
}
