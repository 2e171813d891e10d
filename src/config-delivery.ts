import { ConfigError, fraction, int, required, secret, url, type Env, type Mode } from "./config-env.js";
import { publicUrlOf, twilioCallbackUrl } from "./config-receipts.js";
import { channelNames, type ChannelName } from "./domain/channels.js";

// Delivery configuration (workers and providers), parsed once at the entry
// point with the rest of the config. Secrets come from VAR or VAR_FILE, never
// from anywhere else, and are never logged.

export type EmailProviderConfig =
  | { kind: "sink" }
  | { kind: "smtp"; host: string; port: number; secure: boolean; user?: string; password?: string; from: string; timeoutMs: number };
export type SmsProviderConfig =
  | { kind: "sink" }
  | { kind: "twilio"; baseUrl: string; accountSid: string; authToken: string; from: string; timeoutMs: number; statusCallbackUrl?: string };
export type PushProviderConfig =
  | { kind: "sink" }
  | { kind: "fcm"; baseUrl: string; projectId: string; accessToken: string; timeoutMs: number };
export type WebhookProviderConfig =
  | { kind: "sink" }
  | { kind: "http"; secrets: ReadonlyMap<string, string>; timeoutMs: number };

export interface ProvidersConfig {
  email?: EmailProviderConfig;
  sms?: SmsProviderConfig;
  push?: PushProviderConfig;
  webhook?: WebhookProviderConfig;
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
}

/** A delivery setting that cannot work; named "ConfigError" like the rest, for the CLI's message. */
export class DeliveryConfigError extends ConfigError {}

function kind<K extends string>(env: Env, name: string, kinds: readonly K[], mode: Mode): K | "sink" | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return mode === "dev" ? "sink" : undefined;
  if (raw === "sink" || (kinds as readonly string[]).includes(raw)) return raw as K | "sink";
  throw new DeliveryConfigError(`${name}: expected one of sink, ${kinds.join(", ")}; got "${raw}"`);
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
  const email = kind(env, "HERALD_EMAIL_PROVIDER", ["smtp"] as const, mode);
  if (email === "sink") providers.email = { kind: "sink" };
  if (email === "smtp") {
    providers.email = {
      kind: "smtp",
      host: env.SMTP_HOST ?? "127.0.0.1",
      port: int(env, "SMTP_PORT", 587, 1, 65535),
      secure: env.SMTP_SECURE === "true",
      user: env.SMTP_USER || undefined,
      password: secret(env, "SMTP_PASSWORD"),
      from: required(env, "HERALD_EMAIL_FROM", "with HERALD_EMAIL_PROVIDER=smtp"),
      timeoutMs,
    };
  }
  const sms = kind(env, "HERALD_SMS_PROVIDER", ["twilio"] as const, mode);
  if (sms === "sink") providers.sms = { kind: "sink" };
  if (sms === "twilio") {
    providers.sms = {
      kind: "twilio",
      baseUrl: url(env, "TWILIO_BASE_URL", "https://api.twilio.com"),
      accountSid: required(env, "TWILIO_ACCOUNT_SID", "with HERALD_SMS_PROVIDER=twilio"),
      authToken: required(env, "TWILIO_AUTH_TOKEN", "with HERALD_SMS_PROVIDER=twilio"),
      from: required(env, "HERALD_SMS_FROM", "with HERALD_SMS_PROVIDER=twilio"),
      timeoutMs,
      // Where Twilio reports each message's fate (receipts); unset without HERALD_PUBLIC_URL.
      statusCallbackUrl: twilioCallbackUrl(publicUrlOf(env)),
    };
  }
  const push = kind(env, "HERALD_PUSH_PROVIDER", ["fcm"] as const, mode);
  if (push === "sink") providers.push = { kind: "sink" };
  if (push === "fcm") {
    providers.push = {
      kind: "fcm",
      baseUrl: url(env, "FCM_BASE_URL", "https://fcm.googleapis.com"),
      projectId: required(env, "FCM_PROJECT_ID", "with HERALD_PUSH_PROVIDER=fcm"),
      accessToken: required(env, "FCM_ACCESS_TOKEN", "with HERALD_PUSH_PROVIDER=fcm"),
      timeoutMs,
    };
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
  };
}
