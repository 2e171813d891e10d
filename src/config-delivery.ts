import { ConfigError, fraction, int, required, secret, url, type Env, type Mode } from "./config-env.js";
import { loadFcmConfig, type FcmProviderConfig } from "./config-fcm.js";
import { publicUrlOf, twilioCallbackUrl } from "./config-receipts.js";
import { channelNames, type ChannelName } from "./domain/channels.js";

// Delivery configuration (workers and providers), parsed once at the entry
// point with the rest of the config. Secrets come from VAR or VAR_FILE, never
// from anywhere else, and are never logged.

export type EmailProviderConfig =
  | { kind: "sink" }
  | {
      kind: "smtp";
      /** The provider's name in logs, metrics, breakers and the notification row. @defaultValue "smtp" (the backup relay: "smtp-backup") */
      name?: string;
      host: string;
      port: number;
      secure: boolean;
      user?: string;
      password?: string;
      from: string;
      timeoutMs: number;
    };
export type SmsProviderConfig =
  | { kind: "sink" }
  | { kind: "twilio"; baseUrl: string; accountSid: string; authToken: string; from: string; timeoutMs: number; statusCallbackUrl?: string }
  | { kind: "vonage"; baseUrl: string; apiKey: string; apiSecret: string; from: string; timeoutMs: number };
export type PushProviderConfig =
  | { kind: "sink" }
  | ({ kind: "fcm" } & FcmProviderConfig);
export type WebhookProviderConfig =
  | { kind: "sink" }
  | { kind: "http"; secrets: ReadonlyMap<string, string>; timeoutMs: number };

export interface ProvidersConfig {
  /** The first (preferred) provider of each channel. */
  email?: EmailProviderConfig;
  sms?: SmsProviderConfig;
  push?: PushProviderConfig;
  webhook?: WebhookProviderConfig;
  /**
   * The providers after the first, in order, for a channel whose variable lists several
   * (HERALD_SMS_PROVIDER=twilio,vonage): a send moves down the list while the circuit breakers
   * of the ones before it are open. Absent: the channel has one provider.
   */
  fallbacks?: { email?: EmailProviderConfig[]; sms?: SmsProviderConfig[] };
}

/**
 * Each channel that lists several providers, with their names in failover order, as the
 * providers, their circuit breakers and metrics name them (an SMTP relay by its `name`).
 */
export function failoverLists(p: ProvidersConfig): Array<{ channel: "email" | "sms"; providers: string[] }> {
  const nameOf = (c: EmailProviderConfig | SmsProviderConfig) => (c.kind === "smtp" ? (c.name ?? "smtp") : c.kind);
  const lists: Array<{ channel: "email" | "sms"; providers: string[] }> = [];
  if (p.email && p.fallbacks?.email?.length) lists.push({ channel: "email", providers: [p.email, ...p.fallbacks.email].map(nameOf) });
  if (p.sms && p.fallbacks?.sms?.length) lists.push({ channel: "sms", providers: [p.sms, ...p.fallbacks.sms].map(nameOf) });
  return lists;
}

/** When a provider's circuit breaker opens and how it comes back (src/workers/providers/circuit/). */
export interface BreakerConfig {
  /** Transient failures within `windowMs` that open the breaker. */
  failures: number;
  /** The counting window, from the first failure counted. */
  windowMs: number;
  /** How long an open breaker sends nothing before one probe may go through (half-open). */
  cooldownMs: number;
  /** A probe that has not reported within this long is presumed lost: another worker may probe. */
  probeLeaseMs: number;
}

export interface DeliveryConfig {
  /** Provider sends in flight per worker process and channel. */
  concurrency: number;
  /**
   * Records a worker process holds at once per channel: claimed, rendering, waiting for a send
   * slot, sending or storing the outcome. More than `concurrency`, so the group-committed claims
   * and outcomes overlap the sends.
   */
  inFlight: number;
  /**
   * With fair delivery: records a worker process may hold per channel lane, fetched ahead of its
   * in-flight slots, before fetching waits (src/workers/worker.ts readAhead); 0: no reading ahead.
   */
  readAhead: number;
  /** How long an idle lane's fetch waits on the broker (src/workers/worker.ts longPollMs). */
  longPollMs: number;
  /** Attempts in all (1 + retries), per channel. */
  maxAttempts: Record<ChannelName, number>;
  /** Exponential backoff with full jitter: random(0, min(cap, base * 2^(attempt-1))). */
  backoff: { baseMs: number; capMs: number };
  /**
   * How long a claim (SENDING) holds after its worker last renewed it before another worker may
   * take the notification over. A live worker renews its claims every third of this while their
   * sends run, so it bounds how long a dead worker's claims wait, not how long a send may take.
   */
  leaseMs: number;
  /** The scheduler's sweep returns a claim to RETRYING this long after its lease ended (no worker re-claimed it). */
  claimGraceMs: number;
  /** Sends per second per channel's provider, shared by all workers through Redis; 0 = no limit. */
  rateLimits: Record<ChannelName, number>;
  /** Per-process limit used while Redis is unreachable, as a fraction of the shared one. */
  rateLimitFallbackFraction: number;
  /** Where the local sink writes deliveries. */
  sinkDir: string;
  /** Undefined: not configured (a worker for that channel refuses to start). */
  providers: ProvidersConfig;
  /** Circuit breakers of channels with several providers. */
  breaker: BreakerConfig;
}

/** A delivery setting that cannot work; named "ConfigError" like the rest, for the CLI's message. */
export class DeliveryConfigError extends ConfigError {}

function kind<K extends string>(env: Env, name: string, kinds: readonly K[], mode: Mode): K | "sink" | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return mode === "dev" ? "sink" : undefined;
  if (raw === "sink" || (kinds as readonly string[]).includes(raw)) return raw as K | "sink";
  throw new DeliveryConfigError(`${name}: expected one of sink, ${kinds.join(", ")}; got "${raw}"`);
}

/**
 * An ordered provider list (`twilio,vonage`): each entry one of `kinds`, none twice; `sink` only
 * alone (a local file is not a place to fail over to). Empty: sink in dev, none in production.
 */
function kindList<K extends string>(env: Env, name: string, kinds: readonly K[], mode: Mode): Array<K | "sink"> {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return mode === "dev" ? ["sink"] : [];
  const entries = raw.split(",").map((s) => s.trim());
  const seen = new Set<string>();
  for (const entry of entries) {
    if (entry !== "sink" && !(kinds as readonly string[]).includes(entry)) {
      throw new DeliveryConfigError(`${name}: expected a list of ${kinds.join(", ")} (or sink alone); got "${entry}" in "${raw}"`);
    }
    if (seen.has(entry)) throw new DeliveryConfigError(`${name}: ${entry} is listed twice in "${raw}"`);
    seen.add(entry);
  }
  if (entries.length > 1 && seen.has("sink")) throw new DeliveryConfigError(`${name}: sink cannot be combined with other providers; got "${raw}"`);
  return entries as Array<K | "sink">;
}

/** Webhook signing secrets: `tenant:whsec_<base64>` entries, comma or newline separated. */
function webhookSecrets(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const raw of text.split(/[\n,]/)) {
    const entry = raw.trim();
    if (!entry || entry.startsWith("#")) continue;
    const i = entry.indexOf(":");
    if (i <= 0 || !entry.slice(i + 1).startsWith("whsec_")) {
      throw new DeliveryConfigError("HERALD_WEBHOOK_SECRETS: expected tenant:whsec_<base64> entries");
    }
    map.set(entry.slice(0, i), entry.slice(i + 1));
  }
  return map;
}

export function loadDeliveryConfig(env: Env, mode: Mode): DeliveryConfig {
  const attempts = int(env, "HERALD_MAX_ATTEMPTS", 4, 1, 100);
  const perChannel = <T>(f: (c: ChannelName, upper: string) => T) =>
    Object.fromEntries(channelNames.map((c) => [c, f(c, c.toUpperCase())])) as Record<ChannelName, T>;
  const timeoutMs = int(env, "HERALD_SEND_TIMEOUT_MS", 10_000, 100, 300_000);

  const providers: ProvidersConfig = {};
  const emailList = kindList(env, "HERALD_EMAIL_PROVIDER", ["smtp", "smtp-backup"] as const, mode).map((k): EmailProviderConfig => {
    if (k === "sink") return { kind: "sink" };
    // The backup relay reads SMTP_BACKUP_* the way the first reads SMTP_*; both send as HERALD_EMAIL_FROM.
    const v = k === "smtp" ? "SMTP" : "SMTP_BACKUP";
    return {
      kind: "smtp",
      ...(k === "smtp" ? {} : { name: k }),
      host: k === "smtp" ? (env.SMTP_HOST ?? "127.0.0.1") : required(env, "SMTP_BACKUP_HOST", "with smtp-backup in HERALD_EMAIL_PROVIDER"),
      port: int(env, `${v}_PORT`, 587, 1, 65535),
      secure: env[`${v}_SECURE`] === "true",
      user: env[`${v}_USER`] || undefined,
      password: secret(env, `${v}_PASSWORD`),
      from: required(env, "HERALD_EMAIL_FROM", `with HERALD_EMAIL_PROVIDER=${k}`),
      timeoutMs,
    };
  });
  const smsList = kindList(env, "HERALD_SMS_PROVIDER", ["twilio", "vonage"] as const, mode).map((k): SmsProviderConfig => {
    if (k === "sink") return { kind: "sink" };
    if (k === "vonage") {
      return {
        kind: "vonage",
        baseUrl: url(env, "VONAGE_BASE_URL", "https://rest.nexmo.com"),
        apiKey: required(env, "VONAGE_API_KEY", "with vonage in HERALD_SMS_PROVIDER"),
        apiSecret: required(env, "VONAGE_API_SECRET", "with vonage in HERALD_SMS_PROVIDER"),
        // Vonage accepts an alphanumeric sender id where Twilio needs a number it owns.
        from: env.VONAGE_FROM || required(env, "HERALD_SMS_FROM", "with vonage in HERALD_SMS_PROVIDER (or set VONAGE_FROM)"),
        timeoutMs,
      };
    }
    return {
      kind: "twilio",
      baseUrl: url(env, "TWILIO_BASE_URL", "https://api.twilio.com"),
      accountSid: required(env, "TWILIO_ACCOUNT_SID", "with HERALD_SMS_PROVIDER=twilio"),
      authToken: required(env, "TWILIO_AUTH_TOKEN", "with HERALD_SMS_PROVIDER=twilio"),
      from: required(env, "HERALD_SMS_FROM", "with HERALD_SMS_PROVIDER=twilio"),
      timeoutMs,
      // Where Twilio reports each message's fate (receipts); unset without HERALD_PUBLIC_URL.
      statusCallbackUrl: twilioCallbackUrl(publicUrlOf(env)),
    };
  });
  if (emailList[0]) providers.email = emailList[0];
  if (smsList[0]) providers.sms = smsList[0];
  if (emailList.length > 1 || smsList.length > 1) {
    providers.fallbacks = {
      ...(emailList.length > 1 ? { email: emailList.slice(1) } : {}),
      ...(smsList.length > 1 ? { sms: smsList.slice(1) } : {}),
    };
  }
  const push = kind(env, "HERALD_PUSH_PROVIDER", ["fcm"] as const, mode);
  if (push === "sink") providers.push = { kind: "sink" };
  if (push === "fcm") {
    providers.push = { kind: "fcm", ...loadFcmConfig(env, timeoutMs) };
  }
  const webhook = kind(env, "HERALD_WEBHOOK_PROVIDER", ["http"] as const, mode);
  if (webhook === "sink") providers.webhook = { kind: "sink" };
  if (webhook === "http") {
    providers.webhook = { kind: "http", secrets: webhookSecrets(secret(env, "HERALD_WEBHOOK_SECRETS") ?? ""), timeoutMs };
  }

  const concurrency = int(env, "HERALD_WORKER_CONCURRENCY", 32, 1, 10_000);
  return {
    concurrency,
    inFlight: int(env, "HERALD_WORKER_IN_FLIGHT", 4 * concurrency, concurrency, 100_000),
    // A few MB of records: at a provider limit of 100/s, 50 s of another tenant's backlog in reach.
    readAhead: int(env, "HERALD_WORKER_READ_AHEAD", 5000, 0, 1_000_000),
    // One fetch a second per idle lane; a record is answered at once whatever this is. Shutdown
    // waits for the fetch in flight, hence the cap.
    longPollMs: int(env, "HERALD_WORKER_LONG_POLL_MS", 1000, 100, 10_000),
    maxAttempts: perChannel((_, up) => int(env, `HERALD_MAX_ATTEMPTS_${up}`, attempts, 1, 100)),
    backoff: {
      baseMs: int(env, "HERALD_BACKOFF_BASE_MS", 1000, 1, 3_600_000),
      capMs: int(env, "HERALD_BACKOFF_CAP_MS", 300_000, 1, 86_400_000),
    },
    // Renewed while the send runs (workers/lease-keeper.ts), so it need not outlast a slow send:
    // as long as the default consumer session, a dead worker's claims have lapsed by the time
    // the group hands its partitions to a live worker.
    leaseMs: int(env, "HERALD_SEND_LEASE_MS", 6000, 1000, 3_600_000),
    // The sweep is the safety net (a record committed without an outcome), not the takeover path,
    // so it waits well past the lease: a live but slow claim is not swept and sent twice.
    claimGraceMs: int(env, "HERALD_CLAIM_GRACE_MS", 30_000, 0, 86_400_000),
    rateLimits: perChannel((_, up) => int(env, `HERALD_RATE_LIMIT_${up}`, 0, 0, 1_000_000)),
    rateLimitFallbackFraction: fraction(env, "HERALD_RATE_LIMIT_FALLBACK_FRACTION", 0.5),
    sinkDir: env.HERALD_SINK_DIR ?? "var/deliveries",
    providers,
    breaker: {
      failures: int(env, "HERALD_BREAKER_FAILURES", 5, 1, 1_000_000),
      windowMs: int(env, "HERALD_BREAKER_WINDOW_MS", 30_000, 100, 3_600_000),
      cooldownMs: int(env, "HERALD_BREAKER_COOLDOWN_MS", 30_000, 10, 3_600_000),
      // Past the send timeout: a probe still running is not presumed lost while it may yet answer.
      probeLeaseMs: timeoutMs + 5000,
    },
  };
}
