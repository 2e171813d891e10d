import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { Agent, fetch as undiciFetch } from "undici";
import { describeRefusal, type EgressPolicy } from "../../domain/egress.js";
import { PermanentError } from "../../errors.js";

// The webhook provider's fetch: undici (the same 6.x line as Node 20's own fetch) with a lookup
// that drops every resolved address the egress policy refuses, so the check is made on the
// address the socket actually connects to, after DNS (a name that resolves to a public address
// when the URL is accepted and to 127.0.0.1 when it is sent, "DNS rebinding", is still refused).
// IP literals are never looked up, so the provider checks those itself (checkHost) before the
// request. Redirects are never followed (http-provider.ts), so no second host is reached.

/** A destination the egress policy refuses: permanent, the same URL will be refused again. */
export class EgressRefusedError extends PermanentError {
  override name = "EgressRefusedError";
  /** Set for the socket layer, which reports errors by code. */
  readonly code = "EHERALD_EGRESS";
}

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface EgressFetch {
  fetch: FetchLike;
  close(): Promise<void>;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

export function createEgressFetch(policy: EgressPolicy, resolve: typeof dnsLookup = dnsLookup): EgressFetch {
  function lookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const allowed = addresses.filter((a) => policy.check(a.address).allowed);
      if (allowed.length === 0) {
        const verdict = policy.check(addresses[0]?.address ?? "");
        const why = verdict.allowed ? "no address" : describeRefusal(verdict);
        return callback(new EgressRefusedError(`${hostname} resolves to ${why}; webhooks may reach only public addresses`), []);
      }
      if (options.all) return callback(null, allowed);
      callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  }
  const agent = new Agent({ connect: { lookup } });
  return {
    fetch: (url, init) => undiciFetch(url, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>,
    close: () => agent.close(),
  };
}
