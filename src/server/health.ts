import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthChecks } from "../health/checks.js";

// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md) over
// the process's health checks (src/health/checks.ts): Check and Watch answer from the last
// result and never wait on a dependency.

/** The Health service; `services` are the names answered besides "" (overall), all sharing its status. */
export function grpcHealth(health: HealthChecks, services: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services]);
  const statusOf = (service: string) =>
    !known.has(service) ? ServingStatus.SERVICE_UNKNOWN : health.serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;

  return {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status: statusOf(req.service) };
    },
    list() {
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: statusOf(name) }])) };
    },
    async *watch(req, ctx) {
      // Per the protocol an unknown service gets SERVICE_UNKNOWN and the stream stays open.
      // Woken by every change (and by close), then compares against what it last sent.
      let wake: (() => void) | undefined;
      const waker = () => wake?.();
      const unsubscribe = health.onChange(waker);
      ctx.signal.addEventListener("abort", waker);
      try {
        let last: ServingStatus | undefined;
        while (!ctx.signal.aborted && !health.closed) {
          const status = statusOf(req.service);
          if (status !== last) {
            last = status;
            yield { status };
            continue; // the status may have moved while the client read
          }
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", waker);
      }
    },
  };
}
