import { isRetriable, TransientError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { attributeFailure } from "./attribution.js";
import type { CircuitBoard, CircuitBreaker } from "./circuit/board.js";
import type { Provider, RenderedMessage, SendResult } from "./provider.js";

// One channel's providers in order of preference, each behind its circuit breaker: a send goes to
// the first provider whose breaker lets it through. A transient failure counts against that
// provider's breaker and fails the attempt (the worker's retry and backoff apply); it is not
// re-sent to the next provider at once, because a timeout may hide a message that did go out,
// and a second provider cannot recognise the repeat as the first one's idempotency key would.
// Once the breaker opens, the following attempts go to the next provider. A permanent error is
// about the message (a bad number), not the provider: it neither counts nor fails over.

export interface FailoverDeps {
  channel: string;
  /** In order of preference; at least two. */
  providers: readonly Provider[];
  breakers: CircuitBoard;
  log: Logger;
}

export function createFailoverProvider(deps: FailoverDeps): Provider {
  const { channel, providers, breakers, log } = deps;
  if (providers.length < 2) throw new RangeError(`failover for ${channel}: needs at least two providers, got ${providers.length}`);
  const routes: Array<{ provider: Provider; breaker: CircuitBreaker }> = providers.map((provider) => ({
    provider,
    breaker: breakers.breaker(channel, provider.name),
  }));

  async function send(message: RenderedMessage, signal: AbortSignal): Promise<SendResult> {
    let skipped: string | undefined;
    let retryInMs = Number.POSITIVE_INFINITY;
    for (const { provider, breaker } of routes) {
      const ticket = await breaker.admit();
      if (!ticket.allowed) {
        skipped ??= provider.name;
        retryInMs = Math.min(retryInMs, ticket.retryInMs);
        continue;
      }
      if (skipped) {
        breakers.failedOver(channel, skipped, provider.name);
        log.debug({ from: skipped, to: provider.name }, "circuit open; sending through the next provider");
      }
      let result: SendResult;
      try {
        result = await provider.send(message, signal);
      } catch (err) {
        // Our own abort (shutdown) says nothing about the provider; a probe cut short is presumed
        // lost after its lease and another worker probes.
        if (!signal.aborted) await breaker.record(ticket, !isRetriable(err, true));
        throw attributeFailure(err, provider.name);
      }
      await breaker.record(ticket, true);
      return { ...result, provider: result.provider ?? provider.name };
    }
    // Not sent anywhere: transient, so the retry comes after the soonest breaker may let one through.
    const names = routes.map((r) => r.provider.name).join(", ");
    const err = new TransientError(`${channel}: the circuit of every provider is open (${names})`, {
      retryAfterMs: Number.isFinite(retryInMs) ? retryInMs : undefined,
    });
    throw attributeFailure(err, "");
  }

  return {
    // The channel's rate limiter is keyed by this: one budget for the list (metrics use members).
    name: providers.map((p) => p.name).join(","),
    members: providers.map((p) => p.name),
    send,
    close: async () => void (await Promise.allSettled(providers.map((p) => p.close()))),
  };
}
