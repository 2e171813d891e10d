import { Code } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Logger } from "../log.js";
import type { ApiMetrics, Inc, Listener, Observe } from "../metrics/api.js";

// What every finished RPC leaves behind, on either listener: one count in
// herald_rpc_requests_total with its final code, its latency in herald_rpc_duration_seconds
// (unary calls only), and one access-log line. Each listener calls `finished` exactly once per
// call, wherever the call ends (answered, refused at the door, unauthenticated, failed
// mid-stream, or left by its client). Label children are bound once per method and code, so a
// call costs one array lookup and no label object.

/** The code of a call that succeeded: Connect's Code enum starts at 1 (canceled). */
export const OK = 0;

/** Connect's code names (`invalid_argument`), "ok" for 0, indexed by code. */
const codeNames: readonly string[] = Array.from({ length: 17 }, (_, code) =>
  code === OK ? "ok" : Code[code]!.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`)),
);

export function codeName(code: number): string {
  return codeNames[code] ?? String(code);
}

export interface RpcObserverDeps {
  listener: Listener;
  /** Where calls are counted and timed; none: not recorded (handler tests). */
  metrics?: Pick<ApiMetrics, "rpcRequests" | "rpcDuration">;
  /** The access log (info level), one line per finished call; none: off (HERALD_ACCESS_LOG=off). */
  accessLog?: Logger;
}

/** One method's recorder on one listener. */
export interface MethodObserver {
  /**
   * Records one finished call: `code` as the client saw it (OK = 0), `startedMs` from
   * performance.now() when the call reached the listener, `tenant` when it authenticated.
   */
  finished(code: number, startedMs: number, requestId: string | undefined, tenant: string | undefined): void;
}

export interface RpcObserver {
  /** The recorder of `method`, made on first use and kept. */
  of(method: DescMethod): MethodObserver;
}

export function createRpcObserver(deps: RpcObserverDeps): RpcObserver {
  const byMethod = new Map<DescMethod, MethodObserver>();
  const log = deps.accessLog?.isLevelEnabled("info") ? deps.accessLog.child({ listener: deps.listener }) : undefined;
  return {
    of(method) {
      let observer = byMethod.get(method);
      if (!observer) {
        observer = methodObserver(method, deps, log);
        byMethod.set(method, observer);
      }
      return observer;
    },
  };
}

function methodObserver(method: DescMethod, deps: RpcObserverDeps, log: Logger | undefined): MethodObserver {
  const { listener, metrics } = deps;
  const service = method.parent.typeName;
  const counts: (Inc | undefined)[] = [];
  // A server stream lasts as long as its client watches: its duration would drown the latency.
  const duration: Observe | undefined = method.methodKind === "unary" ? metrics?.rpcDuration.labels(listener, service, method.name) : undefined;
  // The constant fields are serialized once, in the child's bindings, not on every line.
  const methodLog = log?.child({ service, method: method.name });
  return {
    finished(code, startedMs, requestId, tenant) {
      const ms = performance.now() - startedMs;
      if (metrics) (counts[code] ??= metrics.rpcRequests.labels(listener, service, method.name, codeName(code))).inc();
      duration?.observe(ms / 1000);
      methodLog?.info({ code: codeName(code), durationMs: Math.round(ms * 100) / 100, requestId, tenant }, "rpc");
    },
  };
}
