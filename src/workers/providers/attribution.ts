// Which configured provider a send failure came from. With failover a channel's Provider is
// several, and the retry or failure event must name the one that failed (or none, when every
// breaker was open and nothing was sent). Kept beside the error rather than in it: the error's
// class and message stay the provider's own.

const failedBy = new WeakMap<object, string>();

/** Marks `err` as `provider`'s failure ("" for none) unless a provider over several already did; returns it. */
export function attributeFailure<E>(err: E, provider: string): E {
  if (typeof err === "object" && err !== null && !failedBy.has(err)) failedBy.set(err, provider);
  return err;
}

/** The provider `err` was attributed to, or undefined. */
export function failedProvider(err: unknown): string | undefined {
  return typeof err === "object" && err !== null ? failedBy.get(err) : undefined;
}
