import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { clientGone } from "../../src/server/call-info.js";
import { createCallContext } from "../../src/server/grpc-call-context.js";

/** A grpc-js call as far as the context sees it: `cancelled` and the 'cancelled' event. */
function fakeCall() {
  const emitter = new EventEmitter();
  return Object.assign(emitter, {
    cancelled: false,
    cancel() {
      this.cancelled = true;
      emitter.emit("cancelled");
    },
  });
}

function setup(timeoutMs?: number) {
  const call = fakeCall();
  const shutdown = new AbortController();
  const context = createCallContext({
    method: NotificationService.method.create,
    call,
    requestHeader: () => new Headers({ "x-request-id": "r1" }),
    values: createContextValues(),
    shutdownSignal: shutdown.signal,
    timeoutMs,
  });
  return { call, shutdown, context, ctx: context.ctx };
}

const codeOf = (signal: AbortSignal) => (signal.reason instanceof ConnectError ? signal.reason.code : undefined);

afterEach(() => vi.useRealTimers());

describe("call context", () => {
  it("describes the call like connect's context", () => {
    const { ctx } = setup();
    expect(ctx.url).toBe("/herald.v1.NotificationService/Create");
    expect(ctx.protocolName).toBe("grpc");
    expect(ctx.service.typeName).toBe("herald.v1.NotificationService");
    expect(ctx.requestHeader.get("x-request-id")).toBe("r1");
    expect(ctx.timeoutMs()).toBeUndefined();
  });

  it("builds the request headers once, on first read", () => {
    let built = 0;
    const { ctx } = createCallContext({
      method: NotificationService.method.create,
      call: fakeCall(),
      requestHeader: () => (built++, new Headers({ a: "1" })),
      values: createContextValues(),
      shutdownSignal: new AbortController().signal,
    });
    expect(built).toBe(0);
    expect(ctx.requestHeader.get("a")).toBe("1");
    expect(ctx.requestHeader).toBe(ctx.requestHeader);
    expect(built).toBe(1);
  });

  it("links nothing for a call that never reads its signal", () => {
    const { call, context } = setup(60_000);
    expect(call.listenerCount("cancelled")).toBe(0);
    context.end();
    expect(call.listenerCount("cancelled")).toBe(0);
  });

  it("tells whether the client left without building the signal", () => {
    const { call, ctx } = setup(60_000);
    const read = vi.spyOn(ctx, "signal", "get");
    expect(clientGone(ctx)).toBe(false);
    call.cancel();
    expect(clientGone(ctx)).toBe(true);
    expect(read).not.toHaveBeenCalled();
    expect(call.listenerCount("cancelled")).toBe(0);
  });

  it("aborts a read signal when the client cancels, then unlinks", () => {
    const { call, ctx } = setup();
    const signal = ctx.signal;
    expect(signal.aborted).toBe(false);
    expect(call.listenerCount("cancelled")).toBe(1);
    call.cancel();
    expect(codeOf(signal)).toBe(Code.Canceled);
    expect(call.listenerCount("cancelled")).toBe(0);
  });

  it("is already aborted when first read after the client cancelled", () => {
    const { call, ctx } = setup();
    call.cancel();
    expect(codeOf(ctx.signal)).toBe(Code.Canceled);
    expect(call.listenerCount("cancelled")).toBe(0);
  });

  it("carries the shutdown signal's reason, read before or after shutdown", () => {
    const reason = new ConnectError("shutting down", Code.Unavailable);
    const before = setup();
    const signal = before.ctx.signal;
    before.shutdown.abort(reason);
    expect(signal.reason).toBe(reason);

    const after = setup();
    after.shutdown.abort(reason);
    expect(after.ctx.signal.reason).toBe(reason);
  });

  it("aborts with DeadlineExceeded at the call's deadline", () => {
    vi.useFakeTimers();
    const { ctx } = setup(50);
    const signal = ctx.signal;
    vi.advanceTimersByTime(49);
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(codeOf(signal)).toBe(Code.DeadlineExceeded);
  });

  it("end() aborts a read signal and removes every listener, and stays idempotent", () => {
    const { call, shutdown, context, ctx } = setup(60_000);
    const signal = ctx.signal;
    context.end();
    context.end();
    expect(codeOf(signal)).toBe(Code.Canceled);
    expect(call.listenerCount("cancelled")).toBe(0);
    // A later shutdown does not reach the finished call.
    shutdown.abort(new Error("later"));
    expect(codeOf(signal)).toBe(Code.Canceled);
  });

  it("reads as aborted when first read after the call ended", () => {
    const { context, ctx } = setup();
    context.end();
    expect(ctx.signal.aborted).toBe(true);
  });
});
