import { JWT } from "google-auth-library";
import { GOOGLE_TOKEN_URL, type FcmServiceAccount } from "../../config-fcm.js";
import { TransientError } from "../../errors.js";
import { excerpt, NETWORK_FAILURES } from "./failure-text.js";

// OAuth access tokens for FCM. From a service account, google-auth-library's JWT client mints
// them (the JWT-bearer grant, RFC 7523) and caches one for every send: concurrent sends share
// one fetch, and a token is replaced shortly before it expires (eager refresh), so sends never
// carry an expired one. Google's tokens live an hour; the refresh margin is 5 minutes, or a
// quarter of a token's life when that is shorter (a stand-in's few-second tokens in tests).

/** The OAuth scope of the FCM HTTP v1 API. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

/** google-auth-library's own default margin, kept for hour-long tokens. */
const REFRESH_MARGIN_MS = 5 * 60_000;

export interface AccessTokens {
  /** Whether refuse() can lead to a different token (false for a static token). */
  readonly refreshable: boolean;
  /** A token good for a while yet. Rejects with TransientError when none can be had now. */
  get(): Promise<string>;
  /** FCM refused `token`: the next get() mints a new one, once however many sends saw it refused. */
  refuse(token: string): void;
}

/** FCM_ACCESS_TOKEN: taken as configured, never refreshed (for tests and short runs). */
export function staticAccessToken(token: string): AccessTokens {
  return { refreshable: false, get: () => Promise.resolve(token), refuse: () => {} };
}

export interface ServiceAccountTokenOptions {
  /** Bounds each call to the token endpoint. */
  timeoutMs: number;
}

export function serviceAccountTokens(account: FcmServiceAccount, opts: ServiceAccountTokenOptions): AccessTokens {
  const jwt = new JWT({
    email: account.clientEmail,
    key: account.privateKey,
    keyId: account.privateKeyId,
    scopes: [FCM_SCOPE],
    eagerRefreshThresholdMillis: REFRESH_MARGIN_MS,
    transporterOptions: { timeout: opts.timeoutMs },
  });
  jwt.transporter.interceptors.request.add({
    resolved: async (request) => {
      // The JWT client always posts to Google's endpoint (and signs aud for it, which is what that
      // endpoint checks); the key's token_uri says where this deployment mints them.
      if (String(request.url) === GOOGLE_TOKEN_URL) request.url = new URL(account.oauthUrl);
      // One try per send: the delivery's own retries (with backoff, attempts counted) take it from there.
      request.retryConfig = { ...request.retryConfig, retry: 0, noResponseRetries: 0 };
      return request;
    },
  });
  jwt.on("tokens", (tokens) => {
    const lifeMs = (tokens.expiry_date ?? 0) - Date.now();
    jwt.eagerRefreshThresholdMillis = Math.max(0, Math.min(REFRESH_MARGIN_MS, Math.floor(lifeMs / 4)));
  });

  return {
    refreshable: true,
    async get() {
      let token: string | null | undefined;
      try {
        ({ token } = await jwt.getAccessToken());
      } catch (err) {
        throw new TransientError(`access token: ${tokenFailure(err, opts.timeoutMs)}`, { cause: err });
      }
      if (!token) throw new TransientError("access token: the token endpoint answered without one");
      return token;
    },
    refuse(token) {
      // Only the token in use: a send that saw an older one refused must not discard a fresh one.
      if (jwt.credentials.access_token !== token) return;
      // The JWT client's "no token yet" state: the next getAccessToken() mints one.
      jwt.setCredentials({ refresh_token: "jwt-placeholder", expiry_date: 1 });
    },
  };
}

/** Why minting failed, in words, with no key material: the endpoint's error, or the socket's. */
function tokenFailure(err: unknown, timeoutMs: number): string {
  const status = (err as { status?: unknown; response?: { status?: unknown } }).response?.status;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof status === "number") return `the token endpoint answered HTTP ${status}: ${excerpt(message)}`;
  for (let e: unknown = err; typeof e === "object" && e !== null; e = (e as { cause?: unknown }).cause) {
    const { code, name } = e as { code?: unknown; name?: unknown };
    if (typeof code === "string" && NETWORK_FAILURES[code]) return `token endpoint unreachable: ${NETWORK_FAILURES[code]} (${code})`;
    if (name === "TimeoutError") return `the token endpoint did not answer within ${timeoutMs} ms`;
  }
  return `could not be minted: ${excerpt(message)}`;
}
