import { randomBytes } from "node:crypto";
import { fail, startHttpStandIn, type FailBehaviour, type HttpAnswer, type HttpStandIn, type RecordedRequest } from "./behaviour.js";

// A local stand-in for the FCM HTTP v1 API: POST /v1/projects/{project}/messages:send with an
// OAuth bearer token, JSON { message: { token, notification, data, android, apns } }, 200 with
// { name }, errors in Google's shape { error: { code, message, status, details: [FcmError] } }.

export interface FcmStandInOptions {
  projectId: string;
  accessToken: string;
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

export interface FcmStandIn extends HttpStandIn {
  messages: FcmMessage[];
  /** From now on, `token` is answered with 404 UNREGISTERED. */
  unregister(token: string): void;
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

export async function startFcmStandIn(opts: FcmStandInOptions): Promise<FcmStandIn> {
  const messages: FcmMessage[] = [];
  const unregistered = new Set(opts.unregistered ?? []);
  const error = (status: number, message: string, errorCode?: string): HttpAnswer => ({ status, body: fcmErrorBody(status, message, errorCode) });
  let counter = 0;

  function handle(req: RecordedRequest): HttpAnswer {
    const path = req.path.split("?")[0] ?? "";
    const match = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(path);
    if (!match) return error(404, `The requested URL ${path} was not found on this server.`);
    if (req.method !== "POST") return error(405, "Method not allowed");
    if (req.headers.authorization !== `Bearer ${opts.accessToken}`) {
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
  return Object.assign(server, { messages, unregister: (token: string) => void unregistered.add(token) });
}
