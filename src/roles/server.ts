import { uuidv7 } from "uuidv7";
import { file_herald_v1_notification_service } from "../../gen/herald/v1/notification_service_pb.js";
import { file_herald_v1_dispatch } from "../../gen/herald/v1/dispatch_pb.js";
import { file_herald_v1_template } from "../../gen/herald/v1/template_pb.js";
import { file_herald_v1_dead_letter } from "../../gen/herald/v1/dead_letter_pb.js";
import { file_herald_v1_operations } from "../../gen/herald/v1/operations_pb.js";
import { file_herald_v1_suppression } from "../../gen/herald/v1/suppression_pb.js";
import { file_herald_v1_recipient } from "../../gen/herald/v1/recipient_pb.js";
import { Health, file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { createNotificationStore } from "../store/notifications.js";
import { loadCursorKey } from "../store/cursor-key.js";
import { createCursorCodec } from "../domain/cursor.js";
import { grpcHealth } from "../server/health.js";
import { reflectionServices } from "../server/reflection.js";
import { notificationService } from "../server/notification-service.js";
import { templateService } from "../server/template-service.js";
import { createCompilePool } from "../templates/compile-pool.js";
import { createTemplateStore } from "../store/templates.js";
import { deadLetterService } from "../server/dead-letter-service.js";
import { createDeadLetterStore } from "../store/dead-letters.js";
import { suppressionService } from "../server/suppression-service.js";
import { recipientService } from "../server/recipient-service.js";
import { eraseRecipient } from "../store/erasure.js";
import { operationsService } from "../server/operations-service.js";
import { createLagReader } from "../server/handlers/operations/lag.js";
import { createCircuitReader } from "../server/handlers/operations/circuits.js";
import { circuitKey, readCircuits } from "../workers/providers/circuit/shared.js";
import { failoverLists } from "../config-delivery.js";
import { readBacklog } from "../store/backlog.js";
import { withStoreErrors } from "../store/errors.js";
import { createFlowWindow } from "../feed/flow-window.js";
import { createEdge } from "../server/edge.js";
import { startGrpcListener } from "../server/grpc-listener.js";
import { createAdmission } from "../server/admission.js";
import { startHttpListener } from "../server/http-listener.js";
import { probeRoutes } from "../health/probes.js";
import { dashboardRoute } from "../server/dashboard.js";
import { metricsRoute } from "../metrics/route.js";
import { configuredReceiptRoutes } from "../receipts/mount.js";
import { configuredUnsubscribeRoute } from "../unsubscribe/mount.js";
import { loadUnsubscribeKey } from "../store/unsubscribes.js";
import { createApiMetrics } from "../metrics/api.js";
import { createApiKeyMetrics } from "../metrics/api-keys.js";
import { createKeyTable } from "../keys/key-table.js";
import { mount } from "../server/services.js";
import { channelName } from "../kafka/topics.js";
import { createEgressPolicy } from "../domain/egress.js";
import type { ChannelName } from "../domain/channels.js";
import { createStatusFeedStore } from "../feed/feed-store.js";
import { createWatchSnapshotStore } from "../store/watch-snapshot.js";
import { createStatusFeed, type StatusFeed } from "../feed/feed.js";
import { startWhenReachable } from "./dependency-wait.js";
import { kafkaFeedSource, WATCH_GROUP } from "../feed/kafka-source.js";
import { createKafkaMetrics } from "../metrics/kafka.js";
import { createStreamLimiter } from "../server/stream-limiter.js";
import { createConnectionGate } from "../server/connection-limits.js";
import type { Runtime } from "./runtime.js";
import { quotaOf, quotasOn } from "../config-quotas.js";
import { createTenantQuotas } from "../server/quota/tenant-quotas.js";
import { systemClock, type Clock } from "../clock.js";

/** The API server: NotificationService, TemplateService, DeadLetterService, OperationsService, SuppressionService, RecipientService, health and reflection on both listeners. */
export async function startServerRole(rt: Runtime, opts: { clock?: Clock } = {}): Promise<{ grpcPort: number; httpPort: number; feed: StatusFeed }> {
  const { config, log, pool, kafka, health } = rt;
  const metrics = createApiMetrics(rt.metrics);
  const store = createNotificationStore({ pool, commit: config.commit, idempotencyTtlMs: config.idempotencyTtlMs, log, metrics: metrics.accept });
  const templates = createTemplateStore({ pool });
  // Shared by every instance through the database, so a stream resumes on any of them.
  const cursors = createCursorCodec(await rt.waitFor("database", () => loadCursorKey(pool)));
  // The key the workers sign one-click unsubscribe links with, to verify them (src/unsubscribe/).
  const unsubscribeKey = await rt.waitFor("database", () => withStoreErrors(() => loadUnsubscribeKey(pool)));

  // The status feed this instance's WatchStatus streams read: one herald.status consumer.
  const feedStore = createStatusFeedStore({ pool });
  const kafkaMetrics = createKafkaMetrics(rt.metrics);
  const feed = await startWhenReachable(rt.waitFor, "kafka", () =>
    createStatusFeed({
      // Reported under the logical group: each instance's group has a uuid of its own.
      source: kafkaFeedSource(kafka, config.kafka.group, {
        onGroupJoin: kafkaMetrics.groupJoins(WATCH_GROUP),
        onFetch: kafkaMetrics.fetches(WATCH_GROUP),
      }),
      store: feedStore,
      log: log.child({ component: "status-feed" }),
      ringSize: config.watch.ringSize,
      pollMs: config.watch.pollMs,
    }),
  );

  // The operations view's rates and end-to-end times: this instance's feed sees every status event.
  const flow = createFlowWindow({ clock: systemClock });
  feed.listen((e) => flow.observe(e.event));

  // Each tenant with a quota shows from the first scrape at 0, so rate() and alerts see the series.
  for (const tenant of new Set(config.apiKeys.values())) if (quotaOf(config.quotas, tenant)) metrics.quotaRejected(tenant).inc(0);

  const compiler = createCompilePool({ timeoutMs: config.templates.compileTimeoutMs });
  // Create's and PutRecipient's webhook URLs are held to the same policy.
  const egress = createEgressPolicy(config.webhookAllowCidrs);
  const services = [
    notificationService({
      store,
      templates,
      // A test's own clock reaches the accept path (the time a Notify is read against quiet hours).
      clock: opts.clock ?? systemClock,
      // The uuidv7 package draws its randomness from a buffer: uuid's v7 asked the OS for 16 bytes per
      // id (about 5 µs each on this VM, 15 ms of every 1,000-item batch); this is about 1 µs.
      newId: () => uuidv7(),
      maxAttempts: (channel) => config.delivery.maxAttempts[channelName(channel) as ChannelName],
      horizonMs: config.scheduleHorizonMs,
      egress,
      shutdownSignal: rt.shutdownSignal,
      notify: { pool, idempotencyTtlMs: config.idempotencyTtlMs, metrics: metrics.accept },
      // Off unless configured: without quotas the accept path makes no Redis call.
      quotas: quotasOn(config.quotas)
        ? createTenantQuotas({ config: config.quotas, redis: rt.redis, keyPrefix: config.kafka.topicPrefix, log, rejected: (tenant) => metrics.quotaRejected(tenant) })
        : undefined,
      watch: {
        feed,
        feedStore,
        snapshots: createWatchSnapshotStore({ pool }),
        streams: createStreamLimiter({ perKey: config.watch.maxStreamsPerKey, total: config.watch.maxStreams }),
        limits: config.watch,
        shutdownSignal: rt.shutdownSignal,
        cursors,
        metrics: metrics.watch,
      },
    }),
    templateService({ templates, clock: systemClock, compiler }),
    deadLetterService({
      store: createDeadLetterStore({ pool, maxAttempts: (channel) => config.delivery.maxAttempts[channelName(channel) as ChannelName] }),
      clock: systemClock,
    }),
    suppressionService({ pool }),
    recipientService({ pool, egress, eraseRecipient: (req) => eraseRecipient(pool, req) }),
    operationsService({
      backlog: () => withStoreErrors(() => readBacklog(pool)),
      lag: createLagReader({ kafka, log: log.child({ component: "operations" }) }),
      circuits: createCircuitReader({
        lists: failoverLists(config.delivery.providers),
        read: (breakers) => readCircuits(rt.redis, breakers.map((b) => circuitKey(config.kafka.topicPrefix, b.channel, b.provider))),
        log: log.child({ component: "operations" }),
      }),
      flow,
      clock: systemClock,
    }),
    mount(
      Health,
      grpcHealth(health, ["herald.v1.NotificationService", "herald.v1.TemplateService", "herald.v1.DeadLetterService", "herald.v1.OperationsService", "herald.v1.SuppressionService", "herald.v1.RecipientService"], {
        maxWatches: config.healthWatchMaxStreams,
      }),
    ),
    ...reflectionServices({
      files: [
        file_herald_v1_notification_service,
        file_herald_v1_template,
        file_herald_v1_dead_letter,
        file_herald_v1_operations,
        file_herald_v1_suppression,
        file_herald_v1_recipient,
        file_herald_v1_dispatch,
        file_grpc_health_v1_health,
      ],
      services: [
        "herald.v1.NotificationService",
        "herald.v1.TemplateService",
        "herald.v1.DeadLetterService",
        "herald.v1.OperationsService",
        "herald.v1.SuppressionService",
        "herald.v1.RecipientService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ],
    }),
  ];
  // The keys `herald keys` stores, read before the listeners open so the first call knows them.
  const keyMetrics = createApiKeyMetrics(rt.metrics);
  const storedKeys = createKeyTable({ pool, log: log.child({ component: "api-keys" }), refreshMs: config.apiKeyRefreshMs, metrics: keyMetrics.table });
  await rt.waitFor("database", () => withStoreErrors(() => storedKeys.load()));
  storedKeys.start();
  const edge = createEdge({ apiKeys: config.apiKeys, storedKeys, refusals: keyMetrics.refusals, log });
  const admission = createAdmission({
    queueRefusal: (left) => store.acceptRefusal(left),
    maxLagMs: config.admissionMaxLagMs,
    rejectedForLag: metrics.rejectedForLag,
  });
  const { connections } = config;
  const common = {
    services,
    connections: createConnectionGate({ ...connections, log }),
    idleTimeoutMs: connections.idleTimeoutMs,
    edge,
    log,
    maxMessageBytes: config.maxMessageBytes,
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    shutdownSignal: rt.shutdownSignal,
    admission: { gate: admission, methods: new Set(["herald.v1.NotificationService/Create", "herald.v1.NotificationService/Schedule", "herald.v1.NotificationService/Notify", "herald.v1.NotificationService/CreateBatch"]) },
    observe: { metrics, accessLog: config.accessLog ? log : undefined },
  };
  const grpc = await startGrpcListener({ ...common, ...config.grpcAddr });
  const http = await startHttpListener({ ...common, ...config.httpAddr, timeouts: connections, corsOrigins: config.corsOrigins, routes: [probeRoutes(health), metricsRoute(rt.metrics, log), configuredReceiptRoutes(config, { pool, registry: rt.metrics, log }), configuredUnsubscribeRoute(unsubscribeKey, { pool, registry: rt.metrics, log }), dashboardRoute()] });
  log.info({ grpc: `${config.grpcAddr.host}:${grpc.port}`, http: `${config.httpAddr.host}:${http.port}` }, "herald server listening");

  // Order (load balancers were told first, by the runtime): stop taking calls and
  // drain them, then flush the commit batch so every answered request is stored.
  rt.shutdown.add("listeners", async () => void (await Promise.all([grpc.close(), http.close()])));
  rt.shutdown.add("store", () => store.close());
  rt.shutdown.add("template-compiler", () => compiler.close());
  rt.shutdown.add("admission", () => admission.close());
  rt.shutdown.add("status-feed", () => feed.close());
  rt.shutdown.add("api-keys", () => storedKeys.close());
  return { grpcPort: grpc.port, httpPort: http.port, feed };
}
