import { randomUUID, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Logger } from "../log.js";
import { InvalidInputError, OverloadedError, QuotaExceededError, UnavailableError } from "../errors.js";
import { hashApiKey, type ApiKeyTable } from "../domain/api-keys.js";
import { allScopes, keyIdOf, type Scope } from "../domain/key-format.js";
import type { KeyLookup } from "../keys/key-table.js";
import type { RefusalReason } from "../metrics/api-keys.js";
import type { Inc } from "../metrics/api.js";
import { systemClock, type Clock } from "../clock.js";
import { requiredScope } from "./method-scopes.js";
import { callKey, requestIdKey } from "./call-info.js";
import { malformedRequestKey } from "./request-gate.js";

// The edge is what every call passes through on either listener: authenticate,
// attach a request id and logger, and turn whatever a handler threw into a
// ConnectError fit for a client. The Connect interceptor and the grpc-js
// adapter both call these two functions, so the listeners cannot drift apart.

/** Services that answer without an API key (operators and load balancers use them). */
const publicServices = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

/** The trailer (or Connect header) telling a shed call how long to wait before trying again. */
export const RETRY_AFTER_MS = "retry-after-ms";

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The header carrying the correlation id, both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

/**
 * The call's request id: the caller's x-request-id when it is 1 to 128 visible ASCII characters
 * (it is logged and sent back as it is), else a new UUID.
 */
export function requestIdOf(sent: string | null | undefined): string {
  return sent && REQUEST_ID.test(sent) ? sent : randomUUID();
}

/** The answer to a request message that does not parse, on either listener; it echoes no input. */
export function malformedRequest(method: DescMethod): ConnectError {
  return new ConnectError(`request is not a valid ${method.input.typeName}`, Code.InvalidArgument);
}

/**
 * The answer to a call refused for overload. The hint goes out as trailers on gRPC (headers on a
 * Connect unary error); grpc-js and grpc-go clients with a retry policy honour
 * grpc-retry-pushback-ms by themselves.
 */
export function overloaded(retryAfterMs: number): ConnectError {
  return retryLater(`server overloaded, retry after ${retryAfterMs} ms`, retryAfterMs);
}

/**
 * RESOURCE_EXHAUSTED with the retry hint (overload, a tenant's quota): the one way a refusal says
 * when to come back. Without `retryAfterMs` waiting would not help: no retry-after-ms, and a
 * negative pushback, which tells a gRPC client's retry policy not to retry (gRFC A6).
 */
export function retryLater(message: string, retryAfterMs: number | undefined): ConnectError {
  if (retryAfterMs === undefined) return new ConnectError(message, Code.ResourceExhausted, { "grpc-retry-pushback-ms": "-1" });
  const ms = String(retryAfterMs);
  return new ConnectError(message, Code.ResourceExhausted, {
    [RETRY_AFTER_MS]: ms,
    "grpc-retry-pushback-ms": ms,
  });
}

export interface Edge {
  /**
   * Authenticates the call and stores its CallInfo in `values`; throws Unauthenticated (no key, or
   * one unknown, revoked or expired) or PermissionDenied (the key lacks the method's scope).
   */
  admit(method: DescMethod, header: Pick<Headers, "get">, values: ContextValues): void;
  /** Maps any error to a ConnectError; unexpected ones are logged with their cause and become Internal. */
  classify(err: unknown, method: DescMethod, values: ContextValues): ConnectError;
}

export interface EdgeDeps {
  /** HERALD_API_KEYS and its file: hash → tenant, every scope. */
  apiKeys: ApiKeyTable;
  /** The keys `herald keys` made (keys/key-table.ts): looked up by the id in hk_<id>_<secret>. */
  storedKeys?: KeyLookup;
  /** Against which stored keys expire. @defaultValue the system's */
  clock?: Clock;
  /** herald_api_key_refusals_total's children (metrics/api-keys.ts). */
  refusals?: Readonly<Record<RefusalReason, Inc>>;
  log: Logger;
}

/** Who a key says the caller is. */
interface KeyHolder {
  tenant: string;
  keyId: string;
  scopes: ReadonlySet<Scope>;
}

export function createEdge(deps: EdgeDeps): Edge {
  const { apiKeys, storedKeys, refusals } = deps;
  const clock = deps.clock ?? systemClock;

  function refuse(reason: RefusalReason, message: string, code = Code.Unauthenticated): never {
    refusals?.[reason].inc();
    throw new ConnectError(message, code);
  }

  /** The key's holder, or a refusal: UNAUTHENTICATED for a key unknown, revoked or expired. */
  function holderOf(key: string): KeyHolder {
    // A hex digest: the env table's form, and about half the cost of a Buffer digest turned to hex.
    const hash = hashApiKey(key);
    const tenant = apiKeys.get(hash);
    if (tenant !== undefined) return { tenant, keyId: hash.slice(0, 16), scopes: allScopes };
    const id = storedKeys && keyIdOf(key);
    const stored = id === undefined ? undefined : storedKeys!.get(id);
    // Compared in constant time: the id is public, the hash must give nothing away byte by byte.
    if (!stored || !timingSafeEqual(Buffer.from(hash, "hex"), stored.hash)) refuse("unknown", "unknown API key");
    // Told apart only to the key's holder (the secret matched): the caller learns to ask for a new key.
    if (stored.revokedAt !== null) refuse("revoked", "API key revoked");
    if (stored.expiresAt !== null && clock.now() >= stored.expiresAt) refuse("expired", "API key expired");
    storedKeys!.used(stored.id);
    return { tenant: stored.tenant, keyId: stored.id, scopes: stored.scopes };
  }

  return {
    admit(method, header, values) {
      // A malformed request (request-gate.ts) is answered after authentication where there is
      // one, so a caller without a key learns nothing about what the API accepts.
      if (publicServices.has(method.parent.typeName)) {
        if (values.get(malformedRequestKey)) throw malformedRequest(method);
        return;
      }
      // The listener has fixed it as the call arrived (and sends it back); a transport that did
      // not (the handler tests' router) gets one here.
      const requestId = values.get(requestIdKey) ?? requestIdOf(header.get(REQUEST_ID_HEADER));
      const auth = header.get("authorization") ?? "";
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (!m) refuse("missing", "missing API key: send 'authorization: Bearer <api key>'");
      const { tenant, keyId, scopes } = holderOf(m[1]!);
      const scope = requiredScope(method);
      if (!scopes.has(scope)) {
        refuse("scope", `API key lacks the "${scope}" scope, which ${method.parent.name}/${method.name} needs`, Code.PermissionDenied);
      }
      if (values.get(malformedRequestKey)) throw malformedRequest(method);
      let log: Logger | undefined;
      values.set(callKey, {
        tenant,
        keyId,
        requestId,
        // Made on first use: a pino child runs the redaction over its bindings, which cost
        // more than the rest of admit, and most calls never log.
        get log() {
          return (log ??= deps.log.child({ requestId, tenant, rpc: method.name }));
        },
      });
    },
    classify(err, method, values) {
      const log = values.get(callKey)?.log ?? deps.log.child({ rpc: method.name });
      if (err instanceof ConnectError) {
        // connect's own parse error for a message of a request stream (parsed after the
        // interceptors): the client's fault, and its text is the parser's.
        if (err.code === Code.Internal && err.rawMessage.startsWith("parse binary:")) {
          log.debug({ err }, "malformed request message");
          return malformedRequest(method);
        }
        if (err.code === Code.Internal || err.code === Code.Unknown) log.error({ err }, "rpc failed");
        return transportSafe(err);
      }
      if (err instanceof InvalidInputError) {
        // Its message names the field and the rule, and echoes no input.
        return new ConnectError(err.message, Code.InvalidArgument);
      }
      if (err instanceof OverloadedError) {
        // Not logged per call: the store logs once when shedding starts and once when it ends.
        return overloaded(err.retryAfterMs);
      }
      if (err instanceof QuotaExceededError) {
        // Not logged: counted per tenant in herald_quota_rejected_total.
        return retryLater(err.message, err.retryAfterMs);
      }
      if (err instanceof UnavailableError) {
        log.warn({ err: err.cause ?? err, dependency: err.dependency }, `${err.dependency} unavailable`);
        return new ConnectError(`${err.dependency} unavailable, retry later`, Code.Unavailable);
      }
      // Never send an unexpected error's message or stack to the client.
      log.error({ err }, "rpc failed unexpectedly");
      return new ConnectError("internal error", Code.Internal);
    },
  };
}

// String.prototype.isWellFormed / toWellFormed: in Node 20, in TypeScript's lib from ES2024.
type WellFormable = string & { isWellFormed(): boolean; toWellFormed(): string };

/** Longest error message sent: a message may quote the request, and trailers are headers. */
export const MESSAGE_MAX_CHARS = 1024;

/**
 * The error with a message fit for the transport: connect's gRPC and gRPC-Web trailers percent-encode
 * it (encodeURIComponent), which throws on a lone surrogate and leaves the call unanswered, and a
 * message may quote the request (connect's JSON parser's does), so it is also cut to
 * MESSAGE_MAX_CHARS (a 500 KB name once made a 313 KB trailer that hung its client).
 */
function transportSafe(err: ConnectError): ConnectError {
  const text = err.rawMessage as WellFormable;
  if (text.isWellFormed() && text.length <= MESSAGE_MAX_CHARS) return err;
  const whole = text.toWellFormed();
  // A surrogate pair cut in two would be a lone surrogate again: made well-formed once more.
  const cut = whole.length > MESSAGE_MAX_CHARS ? `${(whole.slice(0, MESSAGE_MAX_CHARS) as WellFormable).toWellFormed()}…` : whole;
  const out = new ConnectError(cut, err.code, err.metadata, undefined, err.cause);
  out.details.push(...err.details);
  return out;
}
