import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadDeliveryConfig } from "../../src/config-delivery.js";
import { ConfigError } from "../../src/config-env.js";
import { GOOGLE_TOKEN_URL } from "../../src/config-fcm.js";
import { redactedConfig } from "../../src/config-redact.js";
import { loadConfig } from "../../src/config.js";
import { testServiceAccount } from "../support/service-account.js";

// FCM's authentication settings, checked once at start: a service account key from
// FCM_CREDENTIALS, FCM_CREDENTIALS_FILE or GOOGLE_APPLICATION_CREDENTIALS, or FCM_ACCESS_TOKEN.

const account = testServiceAccount("herald-config-1");
const key = account.json("http://127.0.0.1:9/token");
const push = (env: Record<string, string>) => loadDeliveryConfig({ HERALD_PUSH_PROVIDER: "fcm", ...env }, "production").providers.push;
const fileWith = (text: string) => {
  const path = join(mkdtempSync(join(tmpdir(), "herald-fcm-")), "key.json");
  writeFileSync(path, text);
  return path;
};
const refused = (env: Record<string, string>, message: string) => expect(() => push(env)).toThrow(new ConfigError(message));

describe("FCM configuration", () => {
  it("reads a service account key from FCM_CREDENTIALS_FILE: project from the key, token_uri honoured", () => {
    expect(push({ FCM_CREDENTIALS_FILE: fileWith(JSON.stringify(key)) })).toEqual({
      kind: "fcm",
      baseUrl: "https://fcm.googleapis.com",
      projectId: "herald-config-1",
      timeoutMs: 10_000,
      serviceAccount: {
        source: "FCM_CREDENTIALS_FILE",
        clientEmail: account.clientEmail,
        privateKey: key.private_key,
        privateKeyId: key.private_key_id,
        oauthUrl: "http://127.0.0.1:9/token",
      },
    });
  });

  it("takes FCM_CREDENTIALS inline and GOOGLE_APPLICATION_CREDENTIALS as a path; FCM_PROJECT_ID overrides the key's", () => {
    expect(push({ FCM_CREDENTIALS: JSON.stringify(key), FCM_PROJECT_ID: "other" })).toMatchObject({
      projectId: "other",
      serviceAccount: { source: "FCM_CREDENTIALS" },
    });
    const { token_uri: _dropped, ...withoutUri } = key;
    expect(push({ GOOGLE_APPLICATION_CREDENTIALS: fileWith(JSON.stringify(withoutUri)) })).toMatchObject({
      serviceAccount: { source: "GOOGLE_APPLICATION_CREDENTIALS", oauthUrl: GOOGLE_TOKEN_URL },
    });
  });

  it("keeps FCM_ACCESS_TOKEN as a static token", () => {
    expect(push({ FCM_ACCESS_TOKEN: "ya29.static", FCM_PROJECT_ID: "p" })).toEqual({
      kind: "fcm", baseUrl: "https://fcm.googleapis.com", projectId: "p", timeoutMs: 10_000, accessToken: "ya29.static",
    });
  });

  it("refuses a bad key at start, naming the variable and the field, never quoting the key", () => {
    refused({ FCM_CREDENTIALS: "{not json" }, "FCM_CREDENTIALS: not a usable service account key: not valid JSON");
    refused({ FCM_CREDENTIALS: "[1]" }, "FCM_CREDENTIALS: not a usable service account key: expected a JSON object");
    refused(
      { FCM_CREDENTIALS_FILE: fileWith(JSON.stringify({ ...key, type: "authorized_user" })) },
      'FCM_CREDENTIALS_FILE: not a usable service account key: type must be "service_account", got "authorized_user"',
    );
    refused({ FCM_CREDENTIALS: JSON.stringify({ ...key, client_email: "" }) }, "FCM_CREDENTIALS: not a usable service account key: client_email is missing");
    refused({ FCM_CREDENTIALS: JSON.stringify({ ...key, private_key: undefined }) }, "FCM_CREDENTIALS: not a usable service account key: private_key is missing");
    refused(
      { FCM_CREDENTIALS: JSON.stringify({ ...key, private_key: "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n" }) },
      "FCM_CREDENTIALS: not a usable service account key: private_key is not a PEM private key",
    );
    refused({ FCM_CREDENTIALS: JSON.stringify({ ...key, token_uri: "ftp://x/token" }) }, "FCM_CREDENTIALS: not a usable service account key: token_uri must be an http(s) URL");
    refused({ FCM_CREDENTIALS: JSON.stringify({ ...key, project_id: 7 }) }, "FCM_CREDENTIALS: not a usable service account key: project_id must be a string");
    refused(
      { FCM_CREDENTIALS: JSON.stringify({ ...key, project_id: undefined }) },
      "FCM_PROJECT_ID is required with HERALD_PUSH_PROVIDER=fcm: the key in FCM_CREDENTIALS has no project_id",
    );
    expect(() => push({ GOOGLE_APPLICATION_CREDENTIALS: "/nonexistent/key.json" })).toThrow(/^GOOGLE_APPLICATION_CREDENTIALS: cannot read \/nonexistent\/key.json: ENOENT/);
    // The process's own parse, as a role starts: the same error, before anything connects.
    expect(() => loadConfig({ HERALD_PUSH_PROVIDER: "fcm", FCM_CREDENTIALS_FILE: fileWith("{") }, "production")).toThrow(
      new ConfigError("FCM_CREDENTIALS_FILE: not a usable service account key: not valid JSON"),
    );
  });

  it("refuses two answers to one question, and none", () => {
    refused({ FCM_CREDENTIALS: JSON.stringify(key), FCM_ACCESS_TOKEN: "ya29.x" }, "FCM_ACCESS_TOKEN: set it or a service account key (FCM_CREDENTIALS), not both");
    refused(
      {},
      "FCM_CREDENTIALS_FILE (a service account key; or FCM_CREDENTIALS, GOOGLE_APPLICATION_CREDENTIALS, or FCM_ACCESS_TOKEN for a short run) is required with HERALD_PUSH_PROVIDER=fcm",
    );
  });

  it("herald config shows the account but not its private key", () => {
    const config = loadConfig({ HERALD_PUSH_PROVIDER: "fcm", FCM_CREDENTIALS: JSON.stringify(key) }, "dev");
    const shown = JSON.stringify(redactedConfig(config));
    expect(shown).toContain(account.clientEmail);
    expect(shown).not.toContain("PRIVATE KEY");
  });
});
