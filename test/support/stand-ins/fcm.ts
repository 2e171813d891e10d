import { randomBytes, verify, type KeyObject } from "node:crypto";
import { fail, startHttpStandIn, type FailBehaviour, type HttpAnswer, type HttpStandIn, type RecordedRequest } from "./behaviour.js";

// A local stand-in for the FCM HTTP v1 API: POST /v1/projects/{project}/messages:send with an
// OAuth bearer token, JSON { message: { token, notification, data, android, apns } }, 200 with
// { name }, errors in Google's shape { error: { code, message, status, details: [FcmError] } }.
// With a service account it is also Google's OAuth token endpoint (POST /token): the JWT-bearer
// grant (RFC 7523) with an RS256 assertion signed by the account's key, checked as Google checks
// it (signature, iss, aud, scope, iat/exp), answered with short-lived access tokens; a send with
// an unknown, revoked or expired token is 401 UNAUTHENTICATED.

/** The service account the token endpoint knows: its email and public key. */
export interface StandInServiceAccount {
  clientEmail: string;
  publicKey: KeyObject;
  /** expires_in of the tokens it issues. @defaultValue 3600 */
  tokenLifetimeSeconds?: number;
}

/** What Google's token endpoint checks aud against (and what google-auth-library signs). */
export const GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

export interface FcmStandInOptions {
  projectId: string;
  /** A static token the send endpoint accepts (FCM_ACCESS_TOKEN). */
  accessToken?: string;
  /** Enables POST /token for this account. */
  serviceAccount?: StandInServiceAccount;
  /** Device tokens answered with 404 UNREGISTERED (an app that was uninstalled). */
  unregistered?: Iterable<string>;
}

/** A message the stand-in accepted. */
export interface FcmMessage {
  name: string;
  token: string;
  /** The `message` object as sent. */
  message: Record<string, unknown>;
  request: RecordedRequest;
}

/** An access token the token endpoint issued. */
export interface IssuedToken {
  token: string;
  issuedAt: number;
  expiresAt: number;
  revoked: boolean;
}

export interface FcmStandIn extends HttpStandIn {
  messages: FcmMessage[];
  /** From now on, `token` is answered with 404 UNREGISTERED. */
  unregister(token: string): void;
  /** Every access token POST /token issued, in order. */
  issued: IssuedToken[];
  /** Sends answered 401, by reason. */
  refused: { unknown: number; expired: number; revoked: number };
  /** Revokes every token issued so far (as deleting a key does): sends with them get 401. */
  revokeAll(): void;
  /** While set, POST /token answers 503 (Google's token endpoint having an outage). */
  tokenEndpointDown: boolean;
  /** While set, every send is 401 whatever its token (the key's permissions were taken away). */
  refuseAll: boolean;
}

const CANONICAL: Record<number, string> = {
  400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
};

/** Google's error body; `errorCode` is FCM's own (UNREGISTERED, QUOTA_EXCEEDED, ...), in details. */
export function fcmErrorBody(status: number, message: string, errorCode?: string) {
  const details = errorCode ? [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }] : undefined;
  return { error: { code: status, message, status: CANONICAL[status] ?? "UNKNOWN", details } };
}

/** A behaviour answering with an FCM error, e.g. fcmError(429, "QUOTA_EXCEEDED", { "retry-after": "2" }). */
export function fcmError(status: number, errorCode?: string, headers?: Record<string, string>, message = `${errorCode ?? "error"} (stand-in)`): FailBehaviour {
  return fail(status, fcmErrorBody(status, message, errorCode), headers);
}

const b64json = (part: string): Record<string, unknown> | undefined => {
  try {
    const v = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
};

export async function startFcmStandIn(opts: FcmStandInOptions): Promise<FcmStandIn> {
  const messages: FcmMessage[] = [];
  const unregistered = new Set(opts.unregistered ?? []);
  const error = (status: number, message: string, errorCode?: string): HttpAnswer => ({ status, body: fcmErrorBody(status, message, errorCode) });
  const issued: IssuedToken[] = [];
  const refused = { unknown: 0, expired: 0, revoked: 0 };
  // The stand-in's switches (tokenEndpointDown, refuseAll) as the test sets them.
  const ref: { self?: FcmStandIn } = {};
  let counter = 0;

  /** Google's token endpoint errors: { error, error_description }. */
  const grantError = (status: number, code: string, description: string): HttpAnswer => ({ status, body: { error: code, error_description: description } });

  function token(req: RecordedRequest): HttpAnswer {
    const account = opts.serviceAccount;
    if (!account) return error(404, "The requested URL /token was not found on this server.");
    if (ref.self?.tokenEndpointDown) return grantError(503, "internal_failure", "Backend Error");
    if (req.method !== "POST" || !(req.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded")) {
      return grantError(400, "invalid_request", "Expected a form-encoded POST");
    }
    const form = req.body as Record<string, string>;
    if (form.grant_type !== JWT_BEARER) return grantError(400, "unsupported_grant_type", `Invalid grant_type: ${form.grant_type ?? ""}`);
    const parts = (form.assertion ?? "").split(".");
    const [h, p, sig] = parts;
    const header = h ? b64json(h) : undefined;
    const claims = p ? b64json(p) : undefined;
    if (parts.length !== 3 || !header || !claims || !sig) return grantError(400, "invalid_grant", "Invalid JWT: not a JWS");
    if (header.alg !== "RS256") return grantError(400, "invalid_grant", "Invalid JWT: alg must be RS256");
    if (!verify("RSA-SHA256", Buffer.from(`${h}.${p}`), account.publicKey, Buffer.from(sig, "base64url"))) {
      return grantError(400, "invalid_grant", "Invalid JWT Signature.");
    }
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== account.clientEmail) return grantError(400, "invalid_grant", "Invalid JWT: unknown iss");
    if (claims.aud !== GOOGLE_TOKEN_AUDIENCE) return grantError(400, "invalid_grant", "Invalid JWT: aud must be the token endpoint");
    const scopes = typeof claims.scope === "string" ? claims.scope.split(" ") : [];
    if (!scopes.includes(FCM_SCOPE)) return grantError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    const iat = typeof claims.iat === "number" ? claims.iat : NaN;
    const exp = typeof claims.exp === "number" ? claims.exp : NaN;
    // Google allows a little clock skew and at most an hour of assertion life.
    if (!(iat <= now + 60 && exp > now - 60 && exp - iat <= 3600)) {
      return grantError(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    const lifetime = account.tokenLifetimeSeconds ?? 3600;
    const t: IssuedToken = { token: `ya29.stand-in.${randomBytes(16).toString("hex")}`, issuedAt: Date.now(), expiresAt: Date.now() + lifetime * 1000, revoked: false };
    issued.push(t);
    return { status: 200, body: { access_token: t.token, expires_in: lifetime, token_type: "Bearer" } };
  }

  /** Why a send's bearer token is refused, or undefined when it is good. */
  function authFailure(authorization: string | undefined): keyof typeof refused | undefined {
    const bearer = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
    if (bearer === undefined) return "unknown";
    if (opts.accessToken !== undefined && bearer === opts.accessToken) return undefined;
    const t = issued.find((i) => i.token === bearer);
    if (!t) return "unknown";
    if (t.revoked) return "revoked";
    if (Date.now() >= t.expiresAt) return "expired";
    return undefined;
  }

  function handle(req: RecordedRequest): HttpAnswer {
    const path = req.path.split("?")[0] ?? "";
    if (path === "/token") return token(req);
    const match = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path);
    if (!match) return error(404, `The requested URL ${path} was not found on this server.`);
    if (req.method !== "POST") return error(405, "Method not allowed");
    const why = ref.self?.refuseAll ? "revoked" : authFailure(req.headers.authorization);
    if (why) {
      refused[why]++;
      return error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.");
    }
    const project = decodeURIComponent(match[1] ?? "");
    if (project !== opts.projectId) return error(403, `Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/${project}' (or it may not exist).`);
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) return error(400, "Invalid JSON payload received.");
    const message = (req.body as { message?: unknown } | undefined)?.message;
    if (typeof message !== "object" || message === null) return error(400, "Invalid JSON payload received. Unknown name \"\": Root element must be a message.", "INVALID_ARGUMENT");
    const m = message as Record<string, unknown>;
    if (typeof m.token !== "string" || !m.token) return error(400, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT");
    const data = m.data ?? {};
    if (typeof data !== "object" || data === null || Object.values(data).some((v) => typeof v !== "string")) {
      return error(400, "Invalid value at 'message.data': every value must be a string", "INVALID_ARGUMENT");
    }
    if (unregistered.has(m.token)) return error(404, "Requested entity was not found.", "UNREGISTERED");
    const name = `projects/${opts.projectId}/messages/0:${Date.now()}${String(++counter).padStart(4, "0")}%${randomBytes(8).toString("hex")}`;
    messages.push({ name, token: m.token, message: m, request: req });
    return { status: 200, body: { name } };
  }

  const server = await startHttpStandIn(handle);
  const standIn: FcmStandIn = Object.assign(server, {
    messages,
    unregister: (token: string) => void unregistered.add(token),
    issued,
    refused,
    revokeAll: () => issued.forEach((t) => (t.revoked = true)),
    tokenEndpointDown: false,
    refuseAll: false,
  });
  ref.self = standIn;
  return standIn;
}
