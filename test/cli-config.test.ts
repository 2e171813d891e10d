import { describe, expect, it } from "vitest";
import { runCli } from "./support/processes.js";

// `herald config` as an operator runs it: the built CLI (dist/, `npm run build`) with secrets in
// its environment. It connects to nothing, so it needs no services.

const secrets = ["secret-api-key-9", "secret-db-password-9", "secret-smtp-password-9", "whsec_c2VjcmV0LTk="];
const env = {
  HERALD_API_KEYS: `acme:${secrets[0]}`,
  DATABASE_URL: `postgres://herald:${secrets[1]}@db.internal/herald`,
  HERALD_EMAIL_PROVIDER: "smtp",
  HERALD_EMAIL_FROM: "herald@example.com",
  SMTP_PASSWORD: secrets[2]!,
  HERALD_WEBHOOK_PROVIDER: "http",
  HERALD_WEBHOOK_SECRETS: `acme:${secrets[3]}`,
  HERALD_WORKER_CONCURENCY: "8",
};

describe("herald config", () => {
  it("prints the effective configuration as JSON without a secret, and names an unknown variable on stderr", async () => {
    const r = await runCli(["config"], { env });
    expect(r, r.stderr).toMatchObject({ code: 0, timedOut: false });
    for (const secret of secrets) expect(r.stdout).not.toContain(secret);
    expect(JSON.parse(r.stdout)).toMatchObject({
      mode: "production",
      apiKeys: { keys: 1, tenants: ["acme"] },
      delivery: { providers: { email: { kind: "smtp", password: "REDACTED" }, webhook: { secrets: { acme: "REDACTED" } } } },
    });
    expect(r.stderr).toBe("herald: unknown environment variable HERALD_WORKER_CONCURENCY (did you mean HERALD_WORKER_CONCURRENCY?)\n");
  });

  it("--text: aligned lines, no secret; a bad value exits 2 naming the variable", async () => {
    const text = await runCli(["config", "--text", "--dev"], { env });
    expect(text.code).toBe(0);
    for (const secret of secrets) expect(text.stdout).not.toContain(secret);
    expect(text.stdout).toMatch(/^mode +"dev"$/m);
    const bad = await runCli(["config"], { env: { ...env, HERALD_WORKER_CONCURRENCY: "lots" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('herald: HERALD_WORKER_CONCURRENCY: expected an integer in [1, 10000], got "lots"');
  });
});
