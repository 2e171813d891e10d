import type { Config } from "../config.js";
import { createEgressPolicy } from "../domain/egress.js";
import type { ChannelName } from "../domain/channels.js";
import { channelFromName, LANES, workerGroup } from "../kafka/topics.js";
import type { Logger } from "../log.js";
import { createDeliveryMetrics } from "../metrics/delivery.js";
import { createHighFirst } from "../workers/high-first.js";
import { createKafkaMetrics } from "../metrics/kafka.js";
import { createDeliveryStore } from "../store/deliveries.js";
import { createTemplateStore } from "../store/templates.js";
import { createRenderer } from "../templates/notification-renderer.js";
import { createDeliveryHandler } from "../workers/delivery.js";
import { createLeaseKeeper } from "../workers/lease-keeper.js";
import type { DeliveryCounters } from "../workers/delivery-counters.js";
import { createCircuitBoard, createProvider, type CircuitBoard, type Provider } from "../workers/providers/index.js";
import { createRateLimiter } from "../workers/rate-limit.js";
import { guardSuppressions } from "../workers/providers/suppression-guard.js";
import { createSuppressionLookups } from "../store/suppression-lookups.js";
import { guardUnsubscribes, type UnsubscribeLinks } from "../workers/providers/unsubscribe-guard.js";
import { createCategoryChecks, loadUnsubscribeKey } from "../store/unsubscribes.js";
import { createUnsubscribeTokens } from "../domain/unsubscribe-token.js";
import { systemClock } from "../clock.js";
import { withStoreErrors } from "../store/errors.js";
import { createSlots } from "../workers/slots.js";
import { createChannelWorker, type ChannelWorker } from "../workers/worker.js";
import { startWhenReachable } from "./dependency-wait.js";
import type { Runtime } from "./runtime.js";

/** The deployment's provider circuit breakers (channels with several providers fail over through them). */
export function createWorkerBreakers(config: Config, log: Logger): CircuitBoard {
  return createCircuitBoard({ config: config.delivery.breaker, keyPrefix: config.kafka.topicPrefix, log });
}

/** Builds the configured provider of each channel. Throws a ConfigError naming the variable to set when one has none. */
export function createWorkerProviders(
  config: Config,
  channels: readonly ChannelName[],
  log: Logger,
  given: Partial<Record<ChannelName, Provider>> = {},
  breakers: CircuitBoard = createWorkerBreakers(config, log),
): Map<ChannelName, Provider> {
  const providers = new Map<ChannelName, Provider>();
  const egress = createEgressPolicy(config.webhookAllowCidrs);
  try {
    for (const name of channels) {
      const provider =
        given[name] ??
        createProvider(channelOf(name), config.delivery.providers, {
          sinkDir: config.delivery.sinkDir,
          log: log.child({ component: "provider" }),
          egress,
          breakers,
        });
      providers.set(name, provider);
    }
  } catch (err) {
    for (const [name, p] of providers) if (!given[name]) void p.close().catch(() => {});
    throw err;
  }
  return providers;
}

export interface WorkerRoleOptions {
  channels: readonly ChannelName[];
  /** Providers to use (taken over: closed on shutdown); channels without one get the configured provider. */
  providers?: Partial<Record<ChannelName, Provider>>;
  /** The circuit breakers the given providers were built with; attached to the runtime's Redis and metrics here. */
  breakers?: CircuitBoard;
}

export interface WorkerRole {
  /** Each channel's main-lane worker. */
  workers: ReadonlyMap<ChannelName, ChannelWorker>;
  /** Each channel's high-lane worker (herald.<channel>.high). */
  highWorkers: ReadonlyMap<ChannelName, ChannelWorker>;
  counters(channel: ChannelName): DeliveryCounters;
}

/**
 * Channel workers: per channel, the provider, its shared rate limiter, the
 * renderer and two consumers: of herald.<channel> and of herald.<channel>.high (the
 * high-priority lane), sharing the handler, its send slots and rate limiter. On shutdown the
 * workers drain first (their sends still need the providers), then the providers close.
 */
export async function startWorkerRole(rt: Runtime, opts: WorkerRoleOptions): Promise<WorkerRole> {
  const { config, pool, kafka, redis } = rt;
  const { delivery } = config;
  const log = rt.log.child({ component: "worker" });
  const breakers = opts.breakers ?? createWorkerBreakers(config, log);
  breakers.attach({ redis, registry: rt.metrics });
  const providers = createWorkerProviders(config, opts.channels, log, opts.providers, breakers);

  const renderer = createRenderer({ templates: createTemplateStore({ pool }) });
  // One batcher for every channel: a send's lookup waits for at most the one query in flight.
  const suppressionLookups = createSuppressionLookups({ db: pool });
  const categoryChecks = createCategoryChecks({ db: pool });
  const links = await unsubscribeLinks(rt, opts.channels, log);
  const store = createDeliveryStore({ pool, leaseMs: delivery.leaseMs, streamSending: config.streamSending });
  // A third of the lease: one or two failed renewals (a database blip) still leave claims alive.
  const leases = createLeaseKeeper({ store, intervalMs: Math.max(100, Math.floor(delivery.leaseMs / 3)), log });
  const workers = new Map<ChannelName, ChannelWorker>();
  const highWorkers = new Map<ChannelName, ChannelWorker>();
  const starts: Promise<void>[] = [];
  const deliveryMetrics = createDeliveryMetrics(rt.metrics);
  const kafkaMetrics = createKafkaMetrics(rt.metrics);
  for (const [name, provider] of providers) {
    const metrics = deliveryMetrics.channel(name, provider.members ?? [provider.name]);
    const perSecond = delivery.rateLimits[name];
    const limiter = createRateLimiter({
      redis,
      // Per channel and provider: the dev sink serves every channel with its own limit.
      // Namespaced like topics, so deployments sharing a Redis keep separate budgets.
      name: `${config.kafka.topicPrefix}${name}:${provider.name}`,
      perSecond,
      // While Redis is unreachable each process keeps a share of the limit to itself.
      fallbackPerSecond: Math.ceil(perSecond * delivery.rateLimitFallbackFraction),
      highShare: config.priority.highShare,
      // Its waiters, at most the send slots, are granted round robin between tenants too.
      fair: config.fairDelivery,
      log: log.child({ channel: name }),
      onWait: (seconds) => metrics.rateLimitWaited(seconds),
    });
    // Round robin between tenants (slots.ts): one tenant's backlog does not hold the others' sends.
    const sends = createSlots(delivery.concurrency, { fair: config.fairDelivery });
    // One per channel: its lanes share the handler, so the high lane's records hold back the main lane's new ones.
    const highFirst = createHighFirst({ maxYieldMs: config.priority.yieldMs });
    const handler = createDeliveryHandler({
      store,
      renderer,
      provider: guardUnsubscribes(guardSuppressions(provider, { lookups: suppressionLookups }), { checks: categoryChecks, links }),
      limiter,
      sends,
      backoff: delivery.backoff,
      log,
      leases,
      metrics,
      highFirst,
    });
    // One worker per lane: the high lane's own consumer and in-flight slots keep a backlog on the
    // main topic from delaying it; the shared handler gives its sends the next send slot.
    for (const lane of LANES) {
      starts.push(
        startWhenReachable(rt.waitFor, "kafka", () =>
          createChannelWorker({
            channel: channelOf(name),
            lane,
            kafka,
            handler,
            maxInFlight: delivery.inFlight,
            fair: config.fairDelivery,
            // Without fair slots reading ahead would only queue more records first come, first served.
            readAhead: config.fairDelivery ? delivery.readAhead : 0,
            longPollMs: delivery.longPollMs,
            group: config.kafka.group,
            log,
            metrics,
            onGroupJoin: kafkaMetrics.groupJoins(workerGroup(channelOf(name), lane)),
            onFetch: kafkaMetrics.fetches(workerGroup(channelOf(name), lane)),
          }),
        ).then(
          (worker) => void (lane === "main" ? workers : highWorkers).set(name, worker),
        ),
      );
    }
  }

  // Registered before the starts end: a shutdown while one still waits closes those that run.
  rt.shutdown.add("workers", async () => void (await Promise.all([...workers.values(), ...highWorkers.values()].map((w) => w.close()))));
  // After the workers: their claims are renewed until their outcomes are stored, and those
  // outcomes go through the store's batches.
  rt.shutdown.add("leases", () => leases.close());
  rt.shutdown.add("delivery-store", () => store.close());
  rt.shutdown.add("providers", async () => void (await Promise.allSettled([...providers.values()].map((p) => p.close()))));
  await Promise.all(starts);
  log.info({ channels: [...workers.keys()] }, "workers started");
  return {
    workers,
    highWorkers,
    counters(channel) {
      const worker = workers.get(channel);
      if (!worker) throw new Error(`no worker for channel ${channel}`);
      return worker.counters;
    },
  };
}

/**
 * How this worker signs one-click unsubscribe links: with the deployment's key, read once, when
 * it sends email and a public URL is configured; otherwise it says once that emails go without.
 */
async function unsubscribeLinks(rt: Runtime, channels: readonly ChannelName[], log: Logger): Promise<UnsubscribeLinks | undefined> {
  if (!channels.includes("email")) return undefined;
  const { linkBase, mailto } = rt.config.unsubscribe;
  if (!linkBase) {
    log.info("HERALD_PUBLIC_URL is not set: emails of a category carry no List-Unsubscribe header (one-click unsubscribe is off)");
    return undefined;
  }
  // RFC 8058 §3.1: the one-click URI must be HTTPS; mailbox providers ignore any other.
  if (!linkBase.startsWith("https:")) log.warn({ linkBase }, "HERALD_PUBLIC_URL is not https: mailbox providers will not offer its one-click unsubscribe");
  const secret = await rt.waitFor("database", () => withStoreErrors(() => loadUnsubscribeKey(rt.pool)));
  return { base: linkBase, ...(mailto ? { mailto } : {}), tokens: createUnsubscribeTokens(secret), clock: systemClock };
}

function channelOf(name: ChannelName) {
  const channel = channelFromName(name);
  if (channel === undefined) throw new Error(`unknown channel ${name}`);
  return channel;
}
