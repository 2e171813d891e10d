import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthChecks } from "../health/checks.js";

// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md) over
// the process's health checks (src/health/checks.ts): Check and Watch answer from the last
// result and never wait on a dependency. Health answers without an API key, so what a caller
// sends must not size what the server holds or answers: the service name is cut short in the
// error text (a 500 KB name once made a 313 KB grpc-message trailer, issue 13), and Watch streams
// are capped per instance (5,000 of them held 113 MB).

/** Characters of a requested service name repeated in an error: real names are far shorter. */
export const MAX_ECHOED_NAME = 100;

/**
 * The Health service; `services` are the names answered besides "" (overall), all sharing its
 * status; at most `maxWatches` Watch streams at once, beyond which Watch ends RESOURCE_EXHAUSTED.
 */
export function grpcHealth(health: HealthChecks, services: readonly string[], limits: { maxWatches: number }): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services]);
  let watching = 0;
  const statusOf = (service: string) =>
    !known.has(service) ? ServingStatus.SERVICE_UNKNOWN : health.serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;

  return {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(echo(req.service))}`, Code.NotFound);
      return { status: statusOf(req.service) };
    },
    list() {
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: statusOf(name) }])) };
    },
    async *watch(req, ctx) {
      // Per the protocol an unknown service gets SERVICE_UNKNOWN and the stream stays open.
      // Woken by every change (and by close), then compares against what it last sent.
      if (watching >= limits.maxWatches) {
        throw new ConnectError(`this server has reached its limit of ${limits.maxWatches} Health.Watch streams; use Check, or retry later`, Code.ResourceExhausted);
      }
      let wake: (() => void) | undefined;
      const waker = () => wake?.();
      const unsubscribe = health.onChange(waker);
      ctx.signal.addEventListener("abort", waker);
      watching++;
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
        watching--;
        unsubscribe();
        ctx.signal.removeEventListener("abort", waker);
      }
    },
  };
}

function echo(name: string): string {
  return name.length <= MAX_ECHOED_NAME ? name : `${name.slice(0, MAX_ECHOED_NAME)}... (${name.length} characters)`;
}
