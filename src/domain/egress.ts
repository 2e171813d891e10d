import ipaddr from "ipaddr.js";

// Where a webhook may be sent. A webhook URL comes from a tenant, and the worker POSTs to it from
// inside the operator's network: without a policy, a tenant can make Herald reach the loopback
// interface, the cloud metadata service (169.254.169.254) or any private host (server-side
// request forgery). Only public unicast addresses are allowed, in every spelling (ipaddr.js
// classifies; IPv4-mapped IPv6 is judged as the IPv4 address it carries), unless the operator
// allows a range (HERALD_WEBHOOK_ALLOW_CIDRS), e.g. 127.0.0.0/8 for local development.
// The same policy judges a literal address at accept and every resolved address at connect time.

export type EgressVerdict = { allowed: true } | { allowed: false; address: string; range: string };

export interface EgressPolicy {
  /** Judges one IP address (IPv4 or IPv6 text). An unparsable address is refused. */
  check(address: string): EgressVerdict;
  /**
   * Judges a URL's host when it needs no DNS: an IP literal, or a name that is loopback by
   * definition (`localhost`, `*.localhost`, RFC 6761). Undefined for any other name: its
   * addresses are judged when it is resolved.
   */
  checkHost(hostname: string): EgressVerdict | undefined;
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses "a/n, b/n" (IPv4 or IPv6 CIDRs); throws with the bad entry. */
export function parseCidrs(entries: readonly string[]): Cidr[] {
  return entries.map((entry) => {
    try {
      return ipaddr.parseCIDR(entry);
    } catch {
      throw new Error(`not a CIDR range: ${JSON.stringify(entry)} (expected e.g. 127.0.0.0/8 or ::1/128)`);
    }
  });
}

export function createEgressPolicy(allowCidrs: readonly string[] = []): EgressPolicy {
  const allowed = parseCidrs(allowCidrs);

  function check(address: string): EgressVerdict {
    let ip: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      ip = ipaddr.parse(address);
    } catch {
      return { allowed: false, address, range: "not an IP address" };
    }
    if (ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    const text = ip.toString();
    if (allowed.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits))) return { allowed: true };
    const range = ip.range();
    // "unicast" is what ipaddr.js leaves once every special-purpose block (IANA registries) is
    // named: the public internet. Everything else (6to4 and NAT64 included, which can embed
    // a private IPv4 address) is refused.
    return range === "unicast" ? { allowed: true } : { allowed: false, address: text, range };
  }

  return {
    check,
    checkHost(hostname) {
      const host = hostname.toLowerCase().replace(/\.$/, "");
      if (host === "localhost" || host.endsWith(".localhost")) {
        const verdict = check("127.0.0.1");
        return verdict.allowed ? verdict : { allowed: false, address: host, range: "loopback" };
      }
      const literal = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
      return ipaddr.isValid(literal) ? check(literal) : undefined;
    },
  };
}

/** How a refusal reads in an error: `10.0.0.1 is a private address`. */
export function describeRefusal(v: Extract<EgressVerdict, { allowed: false }>): string {
  return `${v.address} is ${RANGE_NAMES[v.range] ?? `a special-purpose (${v.range})`} address`;
}

const RANGE_NAMES: Record<string, string> = {
  loopback: "a loopback",
  private: "a private (RFC 1918)",
  linkLocal: "a link-local",
  uniqueLocal: "a private (unique local)",
  carrierGradeNat: "a carrier-grade NAT",
  unspecified: "an unspecified",
  multicast: "a multicast",
  broadcast: "a broadcast",
  reserved: "a reserved",
  "not an IP address": "not an IP",
};
