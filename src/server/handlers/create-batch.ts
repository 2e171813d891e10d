import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  BatchErrorSchema,
  BatchResultSchema,
  CreateBatchResponseSchema,
  type BatchItem,
  type BatchResult,
  type CreateBatchRequest,
  type CreateBatchResponse,
} from "../../../gen/herald/v1/notification_service_pb.js";
import { invalidArgument } from "../../domain/validate.js";
import { InvalidInputError } from "../../errors.js";
import { channelName } from "../../kafka/topics.js";
import type { AcceptOutcome } from "../../store/accept.js";
import { unstorableField } from "../../store/accept.js";
import type { AcceptInput } from "../../store/accept-statement.js";
import { storeBatch } from "../../store/batch.js";
import { unstorableNotifyField, type NotifyInput, type NotifyOutcome } from "../../store/notify.js";
import type { TemplateStore } from "../../store/templates.js";
import { traceAccept } from "../../tracing/spans.js";
import { callInfo, clientGone } from "../call-info.js";
import type { AcceptDeps } from "./accept.js";
import { countNotified, notifyAnswer, prepareNotify, withTraceparent, type NotifyDeps } from "./notify.js";
import { prepareCreate, prepareSchedule, type Asker, type Prepared } from "./prepare.js";
import { createTemplatePin } from "./template-ref.js";

// CreateBatch: up to 1,000 Create, Schedule and Notify requests accepted in one transaction, each
// held to its own RPC's rules (the same prepare functions) and answered on its own. An item that
// fails its checks is answered with its error, its field path starting at the item, and the rest
// are stored; a failure of the database fails the call, and nothing is stored.

export const batchLimits = {
  maxItems: 1000,
  /** Items prepared at once: a Notify item reads the database (its recipient, suppressions), a templated one its template. */
  concurrency: 8,
} as const;

export interface CreateBatchDeps extends AcceptDeps, Omit<NotifyDeps, "pinTemplate" | "maxAttempts" | "clock" | "newId"> {
  /** Templates, read once per (template, version) per batch. */
  templates: Pick<TemplateStore, "get">;
}

/** One item on its way: prepared for the store, answered already, or failed. */
type Slot =
  | { kind: "accept"; input: AcceptInput; method: "create" | "schedule" }
  | { kind: "notify"; input: NotifyInput }
  | { kind: "done"; result: BatchResult };

const itemName = { create: "create", schedule: "schedule", notify: "notify" } as const;

export function createBatchHandler(deps: CreateBatchDeps) {
  const ttlMs = deps.idempotencyTtlMs ?? 0;
  return async (req: CreateBatchRequest, ctx: HandlerContext): Promise<CreateBatchResponse> => {
    const call = callInfo(ctx);
    const n = req.items.length;
    if (n === 0) throw invalidArgument("items", "must hold at least one item");
    if (n > batchLimits.maxItems) throw invalidArgument("items", `must hold at most ${batchLimits.maxItems} items, got ${n}`);
    const by: Asker = { tenant: call.tenant, requestId: call.requestId, now: new Date(deps.clock.now()) };
    // Within one batch a template version is read once, however many items name it.
    const pinTemplate = createTemplatePin({ templates: memoTemplates(deps.templates) });
    const prepare = { ...deps, pinTemplate };

    const slots = await mapLimit(req.items, batchLimits.concurrency, async (item, i): Promise<Slot> => {
      const path = `items[${i}].${item.item.case ? itemName[item.item.case] + "." : ""}`;
      try {
        return await prepareItem(prepare, item, by);
      } catch (err) {
        return { kind: "done", result: failed(err, path) };
      }
    });

    // The last look before the transaction: a caller that left is not stored.
    const left = ctx.timeoutMs();
    if ((left !== undefined && left <= 0) || clientGone(ctx)) {
      throw new ConnectError("the call ended before the batch was stored; nothing was stored", left !== undefined && left <= 0 ? Code.DeadlineExceeded : Code.Canceled);
    }
    const accepts = slots.flatMap((s) => (s.kind === "accept" ? [s.input] : []));
    const notifies = slots.flatMap((s) => (s.kind === "notify" ? [s.input] : []));
    // One accept span for the batch: every notification it stores continues that trace.
    const stored = await traceAccept(
      "CreateBatch",
      () => ctx.requestHeader.get("traceparent"),
      () => ({ "herald.batch_items": req.items.length }),
      (traceparent) =>
        storeBatch(
          deps.pool,
          traceparent
            ? { accepts: accepts.map((a) => ({ ...a, traceparent })), notifies: notifies.map((n) => withTraceparent(n, traceparent)) }
            : { accepts, notifies },
          ttlMs,
        ),
    );

    let a = 0;
    let f = 0;
    const results = slots.map((slot, i): BatchResult => {
      if (slot.kind === "done") return slot.result;
      const path = `items[${i}].${slot.kind === "notify" ? "notify" : slot.method}.`;
      if (slot.kind === "accept") return acceptResult(deps, stored.accepts[a++]!, slot.method, path);
      return notifyResult(deps, stored.notifies[f++]!, path);
    });
    return create(CreateBatchResponseSchema, { results });
  };
}

async function prepareItem(
  deps: Parameters<typeof prepareCreate>[0] & Omit<NotifyDeps, "clock" | "metrics">,
  item: BatchItem,
  by: Asker,
): Promise<Slot> {
  const accept = (input: Prepared, method: "create" | "schedule"): Slot => {
    const field = unstorableField({ ...input, id: "", maxAttempts: 0 });
    if (field) throw new InvalidInputError(`${field}: must not contain NUL or unpaired surrogates`);
    return { kind: "accept", method, input: { ...input, id: deps.newId(), maxAttempts: deps.maxAttempts(input.spec.channel) } };
  };
  switch (item.item.case) {
    case "create":
      return accept(await prepareCreate(deps, item.item.value, by), "create");
    case "schedule": {
      const prepared = await prepareSchedule(deps, item.item.value, by);
      if ("replay" in prepared) return { kind: "done", result: create(BatchResultSchema, { result: { case: "notification", value: prepared.replay } }) };
      return accept(prepared, "schedule");
    }
    case "notify": {
      const prepared = await prepareNotify(deps, item.item.value, by);
      if ("replay" in prepared) return { kind: "done", result: create(BatchResultSchema, { result: { case: "notify", value: notifyAnswer(prepared.replay) } }) };
      const field = unstorableNotifyField(prepared);
      if (field) throw new InvalidInputError(`${field}: must not contain NUL or unpaired surrogates`);
      return { kind: "notify", input: prepared };
    }
    default:
      throw invalidArgument("item", "is required: set create, schedule or notify");
  }
}

/** The item's own error; a dependency's failure or a bug is not the item's, and fails the call. */
function failed(err: unknown, path: string): BatchResult {
  let code: Code;
  let message: string;
  if (err instanceof InvalidInputError) {
    code = Code.InvalidArgument;
    message = err.message;
  } else if (err instanceof ConnectError && [Code.InvalidArgument, Code.NotFound, Code.AlreadyExists].includes(err.code)) {
    code = err.code;
    message = err.rawMessage;
  } else {
    throw err;
  }
  // "item: ..." (an empty item) names the item itself.
  const named = message.startsWith("item: ") ? `${path.slice(0, -1)}: ${message.slice(6)}` : `${path}${message}`;
  return create(BatchResultSchema, { result: { case: "error", value: create(BatchErrorSchema, { code, message: named }) } });
}

function acceptResult(deps: Pick<CreateBatchDeps, "metrics">, outcome: AcceptOutcome, method: "create" | "schedule", path: string): BatchResult {
  if (outcome.kind === "key_conflict") {
    return failed(new ConnectError("idempotency_key: already used for a different request; use a new key for a new notification", Code.AlreadyExists), path);
  }
  if (outcome.kind === "created") deps.metrics?.accepted(channelName(outcome.notification.channel), method).inc();
  return create(BatchResultSchema, { result: { case: "notification", value: outcome.notification } });
}

function notifyResult(deps: Pick<CreateBatchDeps, "metrics">, outcome: NotifyOutcome, path: string): BatchResult {
  try {
    if (outcome.kind === "created") countNotified(deps, outcome.notifications);
    return create(BatchResultSchema, { result: { case: "notify", value: notifyAnswer(outcome) } });
  } catch (err) {
    return failed(err, path);
  }
}

/** A template store whose reads are shared within one batch (versions never change; "latest" is read once per batch). */
function memoTemplates(templates: Pick<TemplateStore, "get">): Pick<TemplateStore, "get"> {
  const seen = new Map<string, ReturnType<TemplateStore["get"]>>();
  return {
    get(tenant, id, version) {
      const key = JSON.stringify([tenant, id, version]);
      let read = seen.get(key);
      if (!read) seen.set(key, (read = templates.get(tenant, id, version)));
      return read;
    },
  };
}

/** `fn` over `items` with at most `limit` running at once; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
