import type { LookupAddress } from "node:dns";
import { lookup as dnsLookup } from "node:dns";
import { afterEach, describe, expect, it } from "vitest";
import { createEgressPolicy } from "../../src/domain/egress.js";
import { PermanentError } from "../../src/errors.js";
import { createEgressFetch, EgressRefusedError } from "../../src/workers/providers/egress-fetch.js";
import { startWebhookReceiver, type WebhookReceiver } from "../support/stand-ins/webhook-receiver.js";

// The webhook's connect-time check: the address judged is the one the socket connects to, after
// DNS, so a name that resolves to a forbidden address (DNS rebinding) is refused. A fake resolver
// maps made-up names; the receiver on 127.0.0.1 shows whether a request got through.

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

/** A resolver that answers `addresses` for every name, as dns.lookup with all: true would. */
function resolverOf(addresses: string[]): typeof dnsLookup {
  const answer: LookupAddress[] = addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  return ((_host: string, _opts: unknown, callback: (err: null, a: LookupAddress[]) => void) => setImmediate(() => callback(null, answer))) as unknown as typeof dnsLookup;
}

async function receiver(): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver({ secret: `whsec_${Buffer.from("k".repeat(24)).toString("base64")}` });
  cleanups.push(() => r.close());
  return r;
}

function guarded(allow: string[], addresses: string[]) {
  const f = createEgressFetch(createEgressPolicy(allow), resolverOf(addresses));
  cleanups.push(() => f.close());
  return f;
}

describe("egress fetch", () => {
  it("refuses a name that resolves to loopback, before connecting", async () => {
    const r = await receiver();
    const { fetch } = guarded([], ["127.0.0.1"]);
    const err = await fetch(`http://rebound.example.test:${new URL(r.url).port}/hooks/herald`, { method: "POST", body: "{}" }).then(
      () => undefined,
      (e: unknown) => e as Error & { cause?: unknown },
    );
    expect(err?.cause).toBeInstanceOf(EgressRefusedError);
    expect(err?.cause).toBeInstanceOf(PermanentError);
    expect((err?.cause as Error).message).toBe("rebound.example.test resolves to 127.0.0.1 is a loopback address; webhooks may reach only public addresses");
    expect(r.requests).toHaveLength(0);
  });

  it("connects through its own resolver to an allowed address, skipping the forbidden ones", async () => {
    const r = await receiver();
    const { fetch } = guarded(["127.0.0.0/8"], ["10.0.0.1", "127.0.0.1"]);
    const res = await fetch(`http://only-in-the-fake-resolver.example.test:${new URL(r.url).port}/hooks/herald`, { method: "POST", body: "{}" });
    await res.arrayBuffer();
    expect(r.requests.map((q) => q.path)).toEqual(["/hooks/herald"]);
  });
});
