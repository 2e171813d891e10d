// What any adapter's error message may quote of a failure: a bounded, one-line excerpt with the
// configured secrets taken out, and socket error codes in words.

/** Longest excerpt of a provider's answer kept in an error message. */
export const EXCERPT_CHARS = 300;

/** One line of at most `max` characters, with every configured secret replaced. */
export function excerpt(text: string, secrets: readonly string[] = [], max = EXCERPT_CHARS): string {
  let s = text;
  for (const secret of secrets) if (secret) s = s.split(secret).join("[redacted]");
  s = s.replace(/[\s\p{Cc}]+/gu, " ").trim();
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

// Node's fetch (undici) reports a network failure as TypeError("fetch failed") with the socket
// error as its cause; these name the common ones in words.
export const NETWORK_FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  UND_ERR_SOCKET: "connection closed by the server",
  UND_ERR_CONNECT_TIMEOUT: "connect timed out",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "DNS lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};
