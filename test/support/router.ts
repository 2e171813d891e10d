import type pg from "pg";
import { Writable } from "node:stream";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { pino } from "pino";
import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { Clock } from "../../src/clock.js";
import type { WatchStatusDeps, WatchLimits } from "../../src/server/handlers/watch-status.js";
import { hashApiKey } from "../../src/domain/api-keys.js";
import { createEdge } from "../../src/server/edge.js";
import { edgeInterceptor } from "../../src/server/edge-interceptor.js";
import { deadLetterService } from "../../src/server/dead-letter-service.js";
import { operationsService } from "../../src/server/operations-service.js";
import type { OverviewDeps } from "../../src/server/handlers/operations/get-overview.js";
import { notificationService } from "../../src/server/notification-service.js";
import { templateService } from "../../src/server/template-service.js";
import { createCompilePool } from "../../src/templates/compile-pool.js";
import { createCursorCodec } from "../../src/domain/cursor.js";
import { createStreamLimiter, type StreamLimiter } from "../../src/server/stream-limiter.js";
import type { DeadLetterStore } from "../../src/store/dead-letters.js";
import type { NotificationStore } from "../../src/store/notifications.js";
import type { TemplateStore } from "../../src/store/templates.js";
import type { WatchSnapshotStore } from "../../src/store/watch-snapshot.js";

// One template compiler for every router of a test file: its thread starts on the first PutTemplate.
const compiler = createCompilePool();

/** The cursor codec every router uses: tests seal and open cursors with it too. */
export const routerCursors = createCursorCodec(Buffer.from("router-test-cursor-key"));

// The API's handlers in-process, as connect-es tests its own server logic: the real services
// and the real edge (auth, error mapping) behind createRouterTransport, so a call goes through
// Connect's serialization and error path with no socket, no PostgreSQL and no Kafka. Each test
// passes in only the store methods it means to exercise; any other one throws, which a call
// sees as INTERNAL and the captured log names.

export const TENANT = "tenant-a";
export const API_KEY = "router-test-key";
/** The instant the fixed clock shows: 2030-01-02T03:04:05.000Z. */
export const NOW = Date.UTC(2030, 0, 2, 3, 4, 5);

export interface RouterFakes {
  notifications?: Partial<NotificationStore>;
  templates?: Partial<TemplateStore>;
  deadLetters?: Partial<DeadLetterStore>;
  /** OperationsService's collaborators (the clock is the router's). */
  operations?: Partial<Omit<OverviewDeps, "clock">>;
  watch?: {
    feed?: Partial<WatchStatusDeps["feed"]>;
    feedStore?: Partial<WatchStatusDeps["feedStore"]>;
    snapshots?: Partial<WatchSnapshotStore>;
    streams?: StreamLimiter;
    limits?: Partial<WatchLimits>;
    shutdownSignal?: AbortSignal;
  };
  /** @defaultValue 3 for every channel */
  maxAttempts?: (channel: Channel) => number;
  /** @defaultValue 30 days */
  horizonMs?: number;
}

export interface LogLine {
  level: number;
  msg: string;
  err?: { message: string; type: string };
  [key: string]: unknown;
}

export interface RouterHerald {
  /** A client of `service` sending `apiKey` (none: the call carries no authorization header). */
  client<S extends DescService>(service: S, apiKey?: string | null): Client<S>;
  /** Every line the server logged, parsed. */
  logs: LogLine[];
  /** The ids handed out for new notifications, in order. */
  ids: string[];
}

export const defaultWatchLimits: WatchLimits = { heartbeatMs: 60_000, bufferLimit: 100, snapshotLimit: 50, snapshotWindowMs: 3_600_000 };

export function startRouterHerald(fakes: RouterFakes = {}): RouterHerald {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  const clock: Clock = { now: () => NOW };
  const ids: string[] = [];
  const newId = () => {
    const id = `0190a000-0000-7000-8000-${(ids.length + 1).toString(16).padStart(12, "0")}`;
    ids.push(id);
    return id;
  };
  const { limits, ...watch } = fakes.watch ?? {};
  const services = [
    notificationService({
      store: fake("NotificationStore", fakes.notifications),
      templates: fake("TemplateStore", fakes.templates),
      clock,
      newId,
      maxAttempts: fakes.maxAttempts ?? (() => 3),
      horizonMs: fakes.horizonMs ?? 30 * 24 * 3_600_000,
      // Notify reads recipients from PostgreSQL: its tests run against a real database (test/notify.test.ts).
      notify: { pool: fake<pg.Pool>("Pool") },
      watch: {
        feed: fake<WatchStatusDeps["feed"]>("StatusFeed", watch.feed),
        feedStore: fake<WatchStatusDeps["feedStore"]>("StatusFeedStore", watch.feedStore),
        snapshots: fake<WatchSnapshotStore>("WatchSnapshotStore", watch.snapshots),
        streams: watch.streams ?? createStreamLimiter({ perKey: 4, total: 8 }),
        limits: { ...defaultWatchLimits, ...limits },
        shutdownSignal: watch.shutdownSignal ?? new AbortController().signal,
        cursors: routerCursors,
      },
    }),
    templateService({ templates: fake("TemplateStore", fakes.templates), clock, compiler }),
    deadLetterService({ store: fake("DeadLetterStore", fakes.deadLetters), clock }),
    operationsService({
      backlog: fakes.operations?.backlog ?? (() => Promise.reject(new Error("backlog is not faked in this test"))),
      lag: fakes.operations?.lag ?? fake("LagReader"),
      flow: fakes.operations?.flow ?? fake("FlowWindow"),
      clock,
    }),
  ];
  const edge = createEdge({ apiKeys: new Map([[hashApiKey(API_KEY), TENANT]]), log });
  const routes = (router: ConnectRouter) => {
    for (const { service, impl } of services) router.service(service, impl);
  };
  return {
    logs,
    ids,
    client(service, apiKey = API_KEY) {
      const auth: Interceptor = (next) => (req) => {
        if (apiKey !== null) req.header.set("authorization", `Bearer ${apiKey}`);
        return next(req);
      };
      const transport = createRouterTransport(routes, { router: { interceptors: [edgeInterceptor(edge)] }, transport: { interceptors: [auth] } });
      return createClient(service, transport);
    },
  };
}

/**
 * The Connect listener's interceptor (src/server/http-listener.ts runs the same two edge calls):
 * admit before the handler, classify whatever it throws, also mid-stream.
 */

/** A store whose methods are the given ones; any other throws a plain Error (INTERNAL to a caller). */
function fake<T extends object>(name: string, methods: Partial<T> = {}): T {
  return new Proxy(methods, {
    get(target, prop) {
      if (prop in target) return target[prop as keyof typeof target];
      if (typeof prop !== "string" || prop === "then") return undefined;
      return () => {
        throw new Error(`${name}.${prop} is not faked in this test`);
      };
    },
  }) as T;
}

/** What a failed call told its client: the code's name (readable in a diff) and the message. */
export async function failure(call: Promise<unknown> | (() => Promise<unknown>)): Promise<{ code: string; message: string }> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], message: e.rawMessage };
  }
  throw new Error("the call succeeded");
}

/** Reads a server stream to its end (or its error). */
export async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

/** A fake store method: answers with `answer(...args)` and keeps every call's arguments in `calls`. */
export function recorded<A extends unknown[], R>(answer: (...args: A) => R): ((...args: A) => Promise<Awaited<R>>) & { calls: A[] } {
  const calls: A[] = [];
  const fn = async (...args: A): Promise<Awaited<R>> => {
    calls.push(args);
    return await answer(...args);
  };
  return Object.assign(fn, { calls });
}
