import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Channel, Notification } from "../../../gen/herald/v1/notification_pb.js";
import type { AcceptOutcome } from "../../store/accept.js";
import type { AcceptInput } from "../../store/accept-statement.js";
import { AbandonedError } from "../../store/group-commit.js";
import { clientGone } from "../call-info.js";
import type { NotificationStore } from "../../store/notifications.js";
import { type Clock } from "../../clock.js";
import type { EgressPolicy } from "../../domain/egress.js";
import { Status } from "../../../gen/herald/v1/notification_pb.js";
import { channelName } from "../../kafka/topics.js";
import { traceAccept } from "../../tracing/spans.js";
import { tracingOn } from "../../tracing/state.js";

/** What Create and Schedule need from the process. */
export interface AcceptDeps {
  store: Pick<NotificationStore, "accept" | "findByIdempotencyKey">;
  clock: Clock;
  /** New notification ids (UUIDv7: time-ordered). */
  newId: () => string;
  /** Delivery attempts in all for a channel, stored with each notification. */
  maxAttempts: (channel: Channel) => number;
  /** How far ahead Schedule may go, in ms. */
  horizonMs: number;
  /** Where webhooks may go (HERALD_WEBHOOK_ALLOW_CIDRS). @defaultValue public addresses only */
  egress?: EgressPolicy;
  /**
   * Aborted when the server shuts down. ctx.signal aborts then too, but a call in the accept
   * queue at shutdown is still committed (the store flushes on close): only a caller that
   * left itself is dropped. Without it, any abort of ctx.signal drops the call.
   */
  shutdownSignal?: AbortSignal;
}

/**
 * Stores a validated notification and turns the store's outcome into the RPC's answer. A call
 * whose client cancelled or whose deadline (grpc-timeout, connect-timeout-ms) passed while it
 * waited is dropped before it is committed, so no client is answered an error about a
 * notification that was stored anyway; and one the accept queue cannot store before its
 * deadline is refused RESOURCE_EXHAUSTED at once instead of timing out in the queue.
 */
export function accept(
  deps: AcceptDeps,
  input: Omit<AcceptInput, "id" | "maxAttempts" | "traceparent">,
  ctx: Pick<HandlerContext, "signal" | "timeoutMs" | "values" | "requestHeader">,
): Promise<Notification> {
  // Off: not even the closures below (the accept path's cost must not move).
  if (!tracingOn()) return store(deps, input, ctx);
  // The notification's trace starts here (or continues the caller's): its traceparent is stored
  // with the row and travels on every record written for it (src/tracing/spans.ts).
  return traceAccept(
    input.status === Status.SCHEDULED ? "Schedule" : "Create",
    () => ctx.requestHeader.get("traceparent"),
    () => ({ "herald.channel": channelName(input.spec.channel) }),
    (traceparent) => store(deps, traceparent ? { ...input, traceparent } : input, ctx),
    (n) => ({ "herald.notification_id": n.id }),
  );
}

async function store(
  deps: AcceptDeps,
  input: Omit<AcceptInput, "id" | "maxAttempts">,
  ctx: Pick<HandlerContext, "signal" | "timeoutMs" | "values">,
): Promise<Notification> {
  // Asked up to three times per call (arrival, batch, transaction): cheaply, without building
  // a grpc-js call's abort signal (clientGone). A server shutting down is not the client leaving.
  const abandoned = () => deadlinePassed(ctx) || (clientGone(ctx) && !deps.shutdownSignal?.aborted);
  let outcome: AcceptOutcome;
  try {
    outcome = await deps.store.accept({ ...input, id: deps.newId(), maxAttempts: deps.maxAttempts(input.spec.channel) }, {
      abandoned,
      timeLeftMs: () => ctx.timeoutMs(),
    });
  } catch (err) {
    if (!(err instanceof AbandonedError)) throw err;
    // The client is gone or about to say DEADLINE_EXCEEDED itself; this answer is for logs and
    // the rare client still listening.
    throw deadlinePassed(ctx)
      ? new ConnectError("the deadline passed before the notification was stored; nothing was stored", Code.DeadlineExceeded)
      : new ConnectError("the call was cancelled before the notification was stored; nothing was stored", Code.Canceled);
  }
  switch (outcome.kind) {
    case "created":
    case "duplicate":
      // A repeat of the same request returns the first result, whatever its status now.
      return outcome.notification;
    case "key_conflict":
      throw new ConnectError(
        "idempotency_key: already used for a different request; use a new key for a new notification",
        Code.AlreadyExists,
      );
  }
}

/** Read before the client check: a deadline needs no signal at all. */
function deadlinePassed(ctx: Pick<HandlerContext, "timeoutMs">): boolean {
  const left = ctx.timeoutMs();
  return left !== undefined && left <= 0;
}
