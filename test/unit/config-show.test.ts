import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { configLines, REDACTED, redactedConfig } from "../../src/config-redact.js";
import { describeUnknown, knownVariables, unknownVariables } from "../../src/config-vars.js";

// Every secret a deployment can hold, each a distinct marker the output must never contain.
const secrets = {
  apiKey: "secret-api-key-1",
  dbPassword: "secret-db-password",
  redisPassword: "secret-redis-password",
  smtp: "secret-smtp-password",
  twilio: "secret-twilio-token",
  fcm: "secret-fcm-token",
  webhook: "whsec_c2VjcmV0LXdlYmhvb2s=",
};

const fullEnv = {
  HERALD_API_KEYS: `acme:${secrets.apiKey}`,
  DATABASE_URL: `postgres://herald:${secrets.dbPassword}@db.internal:5432/herald`,
  REDIS_URL: `redis://:${secrets.redisPassword}@cache.internal:6379`,
  HERALD_EMAIL_PROVIDER: "smtp",
  HERALD_EMAIL_FROM: "herald@example.com",
  SMTP_USER: "mailer",
  SMTP_PASSWORD: secrets.smtp,
  HERALD_SMS_PROVIDER: "twilio",
  HERALD_SMS_FROM: "+14155550100",
  TWILIO_ACCOUNT_SID: "AC123",
  TWILIO_AUTH_TOKEN: secrets.twilio,
  HERALD_PUSH_PROVIDER: "fcm",
  FCM_PROJECT_ID: "project-1",
  FCM_ACCESS_TOKEN: secrets.fcm,
  HERALD_WEBHOOK_PROVIDER: "http",
  HERALD_WEBHOOK_SECRETS: `acme:${secrets.webhook}`,
};

describe("unknown HERALD_* variables", () => {
  it("names each one, and the known variable it likely meant when it is close", () => {
    const found = unknownVariables({
      HERALD_WROKER_CONCURRENCY: "8",
      HERALD_RATE_LIMIT_MAIL: "5",
      HERALD_SOMETHING_ELSE_ENTIRELY: "1",
      HERALD_WORKER_CONCURRENCY: "8",
      PATH: "/usr/bin",
    });
    expect(found).toEqual([
      { name: "HERALD_RATE_LIMIT_MAIL", suggestion: "HERALD_RATE_LIMIT_EMAIL" },
      { name: "HERALD_SOMETHING_ELSE_ENTIRELY" },
      { name: "HERALD_WROKER_CONCURRENCY", suggestion: "HERALD_WORKER_CONCURRENCY" },
    ]);
    expect(found.map(describeUnknown)).toEqual([
      "unknown environment variable HERALD_RATE_LIMIT_MAIL (did you mean HERALD_RATE_LIMIT_EMAIL?)",
      "unknown environment variable HERALD_SOMETHING_ELSE_ENTIRELY",
      "unknown environment variable HERALD_WROKER_CONCURRENCY (did you mean HERALD_WORKER_CONCURRENCY?)",
    ]);
  });

  it("lists every HERALD_* variable the configuration reads", () => {
    const read = new Set<string>();
    const recording = (env: Record<string, string>) =>
      new Proxy(env, {
        get(target, name) {
          if (typeof name === "string") read.add(name);
          return target[name as string];
        },
      });
    loadConfig(recording(fullEnv), "production");
    const dir = mkdtempSync(join(tmpdir(), "herald-config-"));
    const file = join(dir, "secret");
    writeFileSync(file, "acme:whsec_eA==\n");
    // The _FILE forms are read only when set, each in place of its variable.
    loadConfig(recording({ ...fullEnv, HERALD_API_KEYS_FILE: file, HERALD_EMAIL_FROM_FILE: file, HERALD_SMS_FROM_FILE: file, HERALD_WEBHOOK_SECRETS_FILE: file }), "production");
    const heraldRead = [...read].filter((n) => n.startsWith("HERALD_"));
    expect(heraldRead.filter((n) => !knownVariables.has(n))).toEqual([]);
    expect(heraldRead.length).toBeGreaterThan(50);
  });
});

describe("the effective configuration", () => {
  const shown = redactedConfig(loadConfig(fullEnv, "production"));
  const json = JSON.stringify(shown, null, 2);
  const text = configLines(shown).join("\n");

  it("holds no secret, as JSON or as text", () => {
    for (const secret of Object.values(secrets)) {
      expect(json).not.toContain(secret);
      expect(text).not.toContain(secret);
    }
  });

  it("keeps what is not secret, defaults filled in", () => {
    expect(shown).toMatchObject({
      mode: "production",
      databaseUrl: `postgres://herald:${REDACTED}@db.internal:5432/herald`,
      redisUrl: `redis://:${REDACTED}@cache.internal:6379`,
      apiKeys: { keys: 1, tenants: ["acme"] },
      grpcAddr: { host: "127.0.0.1", port: 50051 },
      delivery: {
        concurrency: 32,
        providers: {
          email: { kind: "smtp", user: "mailer", password: REDACTED, from: "herald@example.com" },
          sms: { kind: "twilio", accountSid: "AC123", authToken: REDACTED },
          push: { kind: "fcm", projectId: "project-1", accessToken: REDACTED },
          webhook: { kind: "http", secrets: { acme: REDACTED } },
        },
      },
    });
    expect(text).toMatch(/^delivery\.providers\.sms\.authToken +"REDACTED"$/m);
    expect(text).toMatch(/^kafka\.brokers +\["127\.0\.0\.1:9092"\]$/m);
  });
});

describe("HERALD_WEBHOOK_ALLOW_CIDRS", () => {
  it("allows nothing beyond public addresses in production, this machine in dev, and what the operator lists", () => {
    expect(loadConfig({}, "production").webhookAllowCidrs).toEqual([]);
    expect(loadConfig({}, "dev").webhookAllowCidrs).toEqual(["127.0.0.0/8", "::1/128"]);
    expect(loadConfig({ HERALD_WEBHOOK_ALLOW_CIDRS: "10.20.0.0/16, fd00::/8" }, "production").webhookAllowCidrs).toEqual(["10.20.0.0/16", "fd00::/8"]);
  });

  it("refuses an entry that is not a CIDR range, naming the variable and the entry", () => {
    expect(() => loadConfig({ HERALD_WEBHOOK_ALLOW_CIDRS: "10.0.0.0/8,localhost" }, "production")).toThrow(
      'HERALD_WEBHOOK_ALLOW_CIDRS: not a CIDR range: "localhost" (expected e.g. 127.0.0.0/8 or ::1/128)',
    );
  });
});
