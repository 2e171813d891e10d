import { createPrivateKey } from "node:crypto";
import { ConfigError, fileText, required, secret, url, type Env } from "./config-env.js";

// FCM's configuration (HERALD_PUSH_PROVIDER=fcm): where to send, which project, and how to
// authenticate. Production uses a service account's key, from which Herald mints short-lived
// OAuth access tokens and refreshes them before they expire; FCM_ACCESS_TOKEN (a token minted
// elsewhere) is kept for tests and short runs, since Google's tokens last at most an hour.

/** A service account key: what the JWT-bearer grant needs, read from Google's JSON key file. */
export interface FcmServiceAccount {
  /** The variable the key came from, for messages. */
  source: string;
  clientEmail: string;
  /** PEM; checked to parse at start. */
  privateKey: string;
  privateKeyId?: string;
  /** The key's token_uri: where access tokens are minted (Google's, or a stand-in in tests). */
  oauthUrl: string;
}

interface FcmCommon {
  baseUrl: string;
  projectId: string;
  timeoutMs: number;
}

/** Exactly one way to authenticate: a static access token, or a service account. */
export type FcmProviderConfig = FcmCommon &
  ({ accessToken: string; serviceAccount?: undefined } | { serviceAccount: FcmServiceAccount; accessToken?: undefined });

/** Google's token endpoint, when a key names none. */
export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";

const WHY = "with HERALD_PUSH_PROVIDER=fcm";

/** Parses the FCM variables; every error is a ConfigError naming the variable, raised at start. */
export function loadFcmConfig(env: Env, timeoutMs: number): FcmProviderConfig {
  const baseUrl = url(env, "FCM_BASE_URL", "https://fcm.googleapis.com");
  const account = serviceAccountFrom(env);
  const accessToken = secret(env, "FCM_ACCESS_TOKEN");
  if (account && accessToken) {
    throw new ConfigError(`FCM_ACCESS_TOKEN: set it or a service account key (${account.serviceAccount.source}), not both`);
  }
  if (account) {
    const projectId = secret(env, "FCM_PROJECT_ID") ?? account.projectId;
    if (!projectId) throw new ConfigError(`FCM_PROJECT_ID is required ${WHY}: the key in ${account.serviceAccount.source} has no project_id`);
    return { baseUrl, projectId, timeoutMs, serviceAccount: account.serviceAccount };
  }
  if (!accessToken) {
    throw new ConfigError(
      `FCM_CREDENTIALS_FILE (a service account key; or FCM_CREDENTIALS, GOOGLE_APPLICATION_CREDENTIALS, or FCM_ACCESS_TOKEN for a short run) is required ${WHY}`,
    );
  }
  return { baseUrl, projectId: required(env, "FCM_PROJECT_ID", WHY), timeoutMs, accessToken };
}

/** The key from FCM_CREDENTIALS(_FILE), else GOOGLE_APPLICATION_CREDENTIALS (a path), else none. */
function serviceAccountFrom(env: Env): { serviceAccount: FcmServiceAccount; projectId?: string } | undefined {
  const own = secret(env, "FCM_CREDENTIALS");
  if (own !== undefined) return parseServiceAccount(env.FCM_CREDENTIALS_FILE ? "FCM_CREDENTIALS_FILE" : "FCM_CREDENTIALS", own);
  const path = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (path) return parseServiceAccount("GOOGLE_APPLICATION_CREDENTIALS", fileText("GOOGLE_APPLICATION_CREDENTIALS", path));
  return undefined;
}

/** Checks a service account key file's JSON; errors name the variable and the field, never a value. */
export function parseServiceAccount(name: string, text: string): { serviceAccount: FcmServiceAccount; projectId?: string } {
  const bad = (why: string) => new ConfigError(`${name}: not a usable service account key: ${why}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw bad("not valid JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("expected a JSON object");
  const key = json as Record<string, unknown>;
  const field = (fieldName: string): string | undefined => {
    const v = key[fieldName];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw bad(`${fieldName} must be a string`);
    return v;
  };
  const type = field("type");
  if (type !== "service_account") throw bad(`type must be "service_account", got ${type === undefined ? "none" : JSON.stringify(type)}`);
  const clientEmail = field("client_email");
  if (!clientEmail) throw bad("client_email is missing");
  const privateKey = field("private_key");
  if (!privateKey) throw bad("private_key is missing");
  try {
    createPrivateKey(privateKey);
  } catch {
    throw bad("private_key is not a PEM private key");
  }
  const oauthUrl = field("token_uri") ?? GOOGLE_TOKEN_URL;
  if (!isHttpUrl(oauthUrl)) throw bad("token_uri must be an http(s) URL");
  return {
    serviceAccount: { source: name, clientEmail, privateKey, privateKeyId: field("private_key_id"), oauthUrl },
    projectId: field("project_id"),
  };
}

function isHttpUrl(raw: string): boolean {
  try {
    const u = new URL(raw);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
