import { describe, expect, it } from "vitest";
import { loadDeliveryConfig } from "../../src/config-delivery.js";
import { ConfigError } from "../../src/config-env.js";
import { loadConfig } from "../../src/config.js";
import { redactedConfig } from "../../src/config-redact.js";

describe("worker bounds", () => {
  it("holds four times the send concurrency in flight unless told otherwise", () => {
    expect(loadDeliveryConfig({}, "dev")).toMatchObject({ concurrency: 32, inFlight: 128 });
    expect(loadDeliveryConfig({ HERALD_WORKER_CONCURRENCY: "10" }, "dev")).toMatchObject({ concurrency: 10, inFlight: 40 });
    expect(loadDeliveryConfig({ HERALD_WORKER_CONCURRENCY: "10", HERALD_WORKER_IN_FLIGHT: "10" }, "dev")).toMatchObject({ concurrency: 10, inFlight: 10 });
  });

  it("refuses fewer records in flight than sends, naming the variable and the range", () => {
    expect(() => loadDeliveryConfig({ HERALD_WORKER_CONCURRENCY: "10", HERALD_WORKER_IN_FLIGHT: "9" }, "dev")).toThrow(
      new ConfigError('HERALD_WORKER_IN_FLIGHT: expected an integer in [10, 100000], got "9"'),
    );
  });
});

describe("provider lists", () => {
  const twilio = { TWILIO_ACCOUNT_SID: "AC1", TWILIO_AUTH_TOKEN: "tok", HERALD_SMS_FROM: "+15005550006" };
  const vonage = { VONAGE_API_KEY: "key1", VONAGE_API_SECRET: "sec1" };

  it("keeps a single provider as before, with no fallbacks", () => {
    const { providers } = loadDeliveryConfig({ HERALD_SMS_PROVIDER: "twilio", ...twilio }, "production");
    expect(providers.sms).toMatchObject({ kind: "twilio", accountSid: "AC1", baseUrl: "https://api.twilio.com" });
    expect(providers.fallbacks).toBeUndefined();
  });

  it("reads an ordered list: the first is the channel's provider, the rest its fallbacks in order", () => {
    const { providers } = loadDeliveryConfig({ HERALD_SMS_PROVIDER: " twilio , vonage ", ...twilio, ...vonage, VONAGE_BASE_URL: "http://127.0.0.1:9/" }, "production");
    expect(providers.sms).toMatchObject({ kind: "twilio" });
    expect(providers.fallbacks?.sms).toEqual([
      { kind: "vonage", baseUrl: "http://127.0.0.1:9", apiKey: "key1", apiSecret: "sec1", from: "+15005550006", timeoutMs: 10_000 },
    ]);
    const vonageFirst = loadDeliveryConfig({ HERALD_SMS_PROVIDER: "vonage,twilio", ...twilio, ...vonage, VONAGE_FROM: "Herald" }, "production").providers;
    expect(vonageFirst.sms).toMatchObject({ kind: "vonage", from: "Herald", baseUrl: "https://rest.nexmo.com" });
    expect(vonageFirst.fallbacks?.sms).toMatchObject([{ kind: "twilio" }]);
  });

  it("reads the backup SMTP relay from SMTP_BACKUP_*", () => {
    const { providers } = loadDeliveryConfig(
      { HERALD_EMAIL_PROVIDER: "smtp,smtp-backup", HERALD_EMAIL_FROM: "a@b.c", SMTP_HOST: "relay1", SMTP_BACKUP_HOST: "relay2", SMTP_BACKUP_PORT: "2525", SMTP_BACKUP_USER: "u", SMTP_BACKUP_PASSWORD: "p" },
      "production",
    );
    expect(providers.email).toMatchObject({ kind: "smtp", host: "relay1", port: 587 });
    expect(providers.email).not.toHaveProperty("name");
    expect(providers.fallbacks?.email).toEqual([
      { kind: "smtp", name: "smtp-backup", host: "relay2", port: 2525, secure: false, user: "u", password: "p", from: "a@b.c", timeoutMs: 10_000 },
    ]);
  });

  it("shows the later providers in `herald config` without their secrets", () => {
    const env = {
      HERALD_SMS_PROVIDER: "twilio,vonage", ...twilio, VONAGE_API_KEY: "key1", VONAGE_API_SECRET: "vonage-secret-marker",
      HERALD_EMAIL_PROVIDER: "smtp,smtp-backup", HERALD_EMAIL_FROM: "a@b.c", SMTP_BACKUP_HOST: "relay2", SMTP_BACKUP_PASSWORD: "backup-password-marker",
    };
    const shown = JSON.stringify(redactedConfig(loadConfig(env, "production")));
    expect(shown).not.toContain("vonage-secret-marker");
    expect(shown).not.toContain("backup-password-marker");
    expect(shown).toContain('"fallbacks":{"email":[{"kind":"smtp","name":"smtp-backup","host":"relay2"');
  });

  it("refuses what cannot work, naming the variable", () => {
    const load = (env: Record<string, string>) => () => loadDeliveryConfig(env, "production");
    expect(load({ HERALD_SMS_PROVIDER: "twilio,plivo", ...twilio })).toThrow(
      new ConfigError('HERALD_SMS_PROVIDER: expected a list of twilio, vonage (or sink alone); got "plivo" in "twilio,plivo"'),
    );
    expect(load({ HERALD_SMS_PROVIDER: "twilio,twilio", ...twilio })).toThrow(new ConfigError('HERALD_SMS_PROVIDER: twilio is listed twice in "twilio,twilio"'));
    expect(load({ HERALD_SMS_PROVIDER: "twilio,", ...twilio })).toThrow(new ConfigError('HERALD_SMS_PROVIDER: expected a list of twilio, vonage (or sink alone); got "" in "twilio,"'));
    expect(load({ HERALD_EMAIL_PROVIDER: "sink,smtp", HERALD_EMAIL_FROM: "a@b.c" })).toThrow(
      new ConfigError('HERALD_EMAIL_PROVIDER: sink cannot be combined with other providers; got "sink,smtp"'),
    );
    expect(load({ HERALD_SMS_PROVIDER: "twilio,vonage", ...twilio, VONAGE_API_KEY: "k" })).toThrow(
      new ConfigError("VONAGE_API_SECRET is required with vonage in HERALD_SMS_PROVIDER"),
    );
    expect(load({ HERALD_EMAIL_PROVIDER: "smtp,smtp-backup", HERALD_EMAIL_FROM: "a@b.c" })).toThrow(
      new ConfigError("SMTP_BACKUP_HOST is required with smtp-backup in HERALD_EMAIL_PROVIDER"),
    );
  });

  it("reads the breaker thresholds, with defaults, and refuses one out of range", () => {
    expect(loadDeliveryConfig({}, "dev").breaker).toEqual({ failures: 5, windowMs: 30_000, cooldownMs: 30_000, probeLeaseMs: 15_000 });
    expect(
      loadDeliveryConfig({ HERALD_BREAKER_FAILURES: "2", HERALD_BREAKER_WINDOW_MS: "1000", HERALD_BREAKER_COOLDOWN_MS: "500", HERALD_SEND_TIMEOUT_MS: "2000" }, "dev").breaker,
    ).toEqual({ failures: 2, windowMs: 1000, cooldownMs: 500, probeLeaseMs: 7000 });
    expect(() => loadDeliveryConfig({ HERALD_BREAKER_FAILURES: "0" }, "dev")).toThrow(
      new ConfigError('HERALD_BREAKER_FAILURES: expected an integer in [1, 1000000], got "0"'),
    );
  });
});
