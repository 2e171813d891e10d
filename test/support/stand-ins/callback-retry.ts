// How the stand-ins post a callback that Herald does not take: as SendGrid does with its event
// webhook (a non-2xx answer or no answer is posted again, at growing intervals, for up to a day)
// and Twilio with a callback URL's retry override (#rc). Compressed to test time: `attempts` in
// all, `delayMs` doubling between them.

export interface CallbackRetries {
  attempts: number;
  delayMs: number;
  /** Each attempt's HTTP status (0: no answer). */
  onAttempt?: (status: number) => void;
}

/** Runs `post` until it answers 2xx or 4xx (a refusal is final), or the attempts are spent; returns the last status. */
export async function postWithRetries(post: () => Promise<number>, retries: CallbackRetries | undefined): Promise<number> {
  const attempts = retries?.attempts ?? 1;
  let delay = retries?.delayMs ?? 0;
  let status = 0;
  for (let i = 0; i < attempts; i++) {
    try {
      status = await post();
    } catch {
      status = 0;
    }
    retries?.onAttempt?.(status);
    if (status >= 200 && status < 500) return status;
    if (i < attempts - 1) {
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }
  return status;
}
