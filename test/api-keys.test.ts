import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { TemplateService } from "../gen/herald/v1/template_pb.js";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import { createTemplateClient } from "../src/client/index.js";
import { runKeysCommand } from "../src/cli/keys-commands.js";
import { keyDigest } from "../src/domain/key-format.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { bearer, rejection } from "./support/rpc.js";
import { waitFor } from "./support/wait.js";
import { metricValue } from "./support/metric-values.js";
import { spawnCli } from "./support/processes.js";

// Keys made with `herald keys` against a running Herald: used over gRPC and Connect, refused once
// revoked or expired (no restart: the server hears of each change by NOTIFY), held to their
// scopes, never printed back; the env keys beside them keep working with every scope.

function email(userId: string) {
  return {
    channel: Channel.EMAIL,
    recipient: { userId, address: { case: "email" as const, value: "ada@example.com" } },
    body: { case: "content" as const, value: { subject: "Hi", text: "Hello" } },
  };
}

/** Runs `herald keys ...` against `h`'s database, as an operator would. */
async function keys(h: TestHerald, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runKeysCommand(args, { DATABASE_URL: h.db.url }, { out: { write: (s: string) => (out += s) }, err: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

async function createKey(h: TestHerald, tenant: string, ...flags: string[]): Promise<{ id: string; key: string }> {
  const res = await keys(h, ["create", "--tenant", tenant, "--json", ...flags]);
  expect(res.code).toBe(0);
  const made = JSON.parse(res.out) as { id: string; key: string };
  return { id: made.id, key: made.key };
}

function connect(h: TestHerald, key: string): Client<typeof NotificationService> {
  return createClient(NotificationService, createConnectTransport({ baseUrl: h.httpUrl, httpVersion: "1.1", interceptors: [bearer(key)] }));
}

async function tenantOf(h: TestHerald, id: string): Promise<string | undefined> {
  const r = await h.db.pool.query<{ tenant: string }>("SELECT tenant FROM notifications WHERE id = $1", [id]);
  return r.rows[0]?.tenant;
}

describe("stored API keys, changes heard by NOTIFY", () => {
  let herald: TestHerald;
  beforeAll(async () => {
    // The periodic reload is out of the way: only a notification can bring a change in time.
    herald = await startTestHerald({ roles: ["server"], env: { HERALD_API_KEY_REFRESH_MS: "3600000" } });
  });
  afterAll(async () => {
    await herald?.stop();
  });

  it("admits a new key over gRPC and Connect for its tenant, and refuses it on both once revoked, without a restart", { timeout: 60_000 }, async () => {
    const { id, key } = await createKey(herald, "acme", "--name", "billing");
    const grpc = herald.client(key);
    const http = connect(herald, key);
    // Made after the server started: it is admitted once the notification has been heard.
    const { notification } = await waitFor("the new key admitted", () => grpc.create({ notification: email("k1") }));
    expect(await tenantOf(herald, notification!.id)).toBe("acme");
    const got = await http.get({ id: notification!.id });
    expect(got.notification?.id).toBe(notification!.id);

    const revoked = await keys(herald, ["revoke", id]);
    expect(revoked.code).toBe(0);
    expect(revoked.err).toContain(`revoked ${id} (tenant acme)`);
    for (const call of [() => grpc.get({ id: notification!.id }), () => http.get({ id: notification!.id })]) {
      const refused = await waitFor("the revoked key refused", async () => {
        // rejection() throws while the call still succeeds: not yet.
        const r = await rejection(call()).catch(() => undefined);
        return r?.code === "Unauthenticated" ? r : undefined;
      });
      expect(refused).toEqual({ code: "Unauthenticated", message: "API key revoked" });
    }
    expect(await metricValue(herald.rt.metrics, "herald_api_key_refusals_total", { reason: "revoked" })).toBeGreaterThanOrEqual(2);
    // Revoking again changes nothing and says so.
    expect((await keys(herald, ["revoke", id])).err).toContain(`${id} was already revoked`);
  });

  it("holds a read-only key to reads: PERMISSION_DENIED on Create naming the scope, OK on Get", { timeout: 60_000 }, async () => {
    const sender = await createKey(herald, "acme", "--scopes", "send");
    const reader = await createKey(herald, "acme", "--scopes", "read");
    const { notification } = await waitFor("the send key admitted", () => herald.client(sender.key).create({ notification: email("k2") }));
    await waitFor("the read key admitted", () => herald.client(reader.key).get({ id: notification!.id }));
    const clients = { grpc: herald.client(reader.key), connect: connect(herald, reader.key) };
    for (const client of Object.values(clients)) {
      const got = await client.get({ id: notification!.id });
      expect(got.notification?.id).toBe(notification!.id);
      expect(await rejection(client.create({ notification: email("k2-read") }))).toEqual({
        code: "PermissionDenied",
        message: 'API key lacks the "send" scope, which NotificationService/Create needs',
      });
    }
    // And a send-only key reads nothing.
    expect(await rejection(connect(herald, sender.key).get({ id: notification!.id }))).toEqual({
      code: "PermissionDenied",
      message: 'API key lacks the "read" scope, which NotificationService/Get needs',
    });
  });

  it("refuses a key once it has expired", { timeout: 60_000 }, async () => {
    const { key } = await createKey(herald, "acme", "--ttl", "1s");
    const refused = await waitFor("the key expired", async () => {
      const r = await rejection(herald.client(key).get({ id: "00000000-0000-7000-8000-000000000000" }));
      return r.message === "API key expired" ? r : undefined;
    });
    expect(refused.code).toBe("Unauthenticated");
    expect(await rejection(connect(herald, key).get({ id: "00000000-0000-7000-8000-000000000000" }))).toEqual({ code: "Unauthenticated", message: "API key expired" });
  });

  it("keeps the env keys working with every scope", { timeout: 60_000 }, async () => {
    const { notification } = await herald.client(KEY_A).create({ notification: email("k3") });
    expect(await tenantOf(herald, notification!.id)).toBe("tenant-a");
    const templates = createTemplateClient({ address: herald.grpcAddress, apiKey: KEY_A });
    try {
      await templates.putTemplate({ templateId: "keys-env", content: { subject: "S", text: "T" } });
    } finally {
      templates.close();
    }
    // An admin stored key may too; a send,read one may not.
    const admin = await createKey(herald, "acme", "--scopes", "admin");
    const app = await createKey(herald, "acme");
    const viaConnect = (key: string) => createClient(TemplateService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [bearer(key)] }));
    await waitFor("the admin key admitted", () => viaConnect(admin.key).putTemplate({ templateId: "keys-admin", content: { subject: "S", text: "T" } }));
    const refused = await waitFor("the app key known", async () => {
      const r = await rejection(viaConnect(app.key).putTemplate({ templateId: "keys-app", content: { subject: "S", text: "T" } }));
      return r.code === "PermissionDenied" ? r : undefined;
    });
    expect(refused.message).toBe('API key lacks the "admin" scope, which TemplateService/PutTemplate needs');
  });

  it("lists keys with their state and never a secret or its hash", { timeout: 60_000 }, async () => {
    const { id, key } = await createKey(herald, "listed", "--name", "ops laptop", "--expires", "2099-01-01T00:00:00Z");
    const other = await createKey(herald, "other-tenant");
    await keys(herald, ["revoke", other.id]);
    const text = await keys(herald, ["list", "--tenant", "listed"]);
    const json = await keys(herald, ["list", "--json"]);
    const secret = key.split("_").slice(2).join("_");
    const hash = keyDigest(key).toString("hex");
    for (const out of [text.out, json.out]) {
      expect(out).toContain(id);
      for (const hidden of [key, secret, hash, other.key]) expect(out).not.toContain(hidden);
    }
    expect(text.out.split("\n")[0]).toMatch(/^ID\s+TENANT\s+NAME\s+SCOPES\s+CREATED\s+EXPIRES\s+REVOKED\s+LAST USED\s+STATE$/);
    expect(text.out).toMatch(new RegExp(`${id}\\s+listed\\s+ops laptop\\s+send,read\\s+\\S+\\s+2099-01-01T00:00:00Z\\s+-\\s+-\\s+active`));
    expect(text.out).not.toContain(other.id);
    const rows = JSON.parse(json.out) as Array<Record<string, unknown>>;
    expect(rows.find((r) => r.id === other.id)).toMatchObject({ tenant: "other-tenant", state: "revoked" });
    expect(Object.keys(rows[0]!).sort()).toEqual(["createdAt", "expiresAt", "id", "lastUsedAt", "name", "revokedAt", "scopes", "state", "tenant"]);
  });

  it("works as the herald binary: the key alone on stdout, the notes on stderr, exit codes", { timeout: 60_000 }, async () => {
    const env = { DATABASE_URL: herald.db.url };
    const created = spawnCli(["keys", "create", "--tenant", "acme", "--name", "from the binary"], { env });
    expect(await created.exited).toMatchObject({ code: 0 });
    expect(created.stdout()).toMatch(/^hk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$/);
    expect(created.stderr()).toContain("shown once");
    const key = created.stdout().trim();
    await waitFor("the binary's key admitted", () => herald.client(key).create({ notification: email("bin") }));
    const unknown = spawnCli(["keys", "revoke", "000000000000"], { env });
    expect(await unknown.exited).toMatchObject({ code: 1 });
    const usage = spawnCli(["keys", "create"], { env });
    expect(await usage.exited).toMatchObject({ code: 2 });
    expect(usage.stderr()).toContain("--tenant is required");
  });

  it("refuses bad flags before touching the database", async () => {
    await expect(keys(herald, ["create", "--tenant", "Bad Tenant"])).rejects.toThrow("--tenant must match");
    await expect(keys(herald, ["create", "--tenant", "acme", "--scopes", "send,write"])).rejects.toThrow('unknown scope "write"');
    await expect(keys(herald, ["create", "--tenant", "acme", "--expires", "2001-01-01T00:00:00Z"])).rejects.toThrow("--expires must be in the future");
    await expect(keys(herald, ["create", "--tenant", "acme", "--expires", "2099-01-01T00:00:00"])).rejects.toThrow("with a zone");
    await expect(keys(herald, ["create", "--tenant", "acme", "--ttl", "soon"])).rejects.toThrow("--ttl expects");
    await expect(keys(herald, ["create", "--tenant", "acme", "--ttl", "1d", "--expires", "2099-01-01T00:00:00Z"])).rejects.toThrow("not both");
    expect((await keys(herald, ["revoke", "nope"])).code).toBe(1);
  });

  it("picks up changes again after its listening session is lost", { timeout: 60_000 }, async () => {
    const { id, key } = await createKey(herald, "acme");
    await waitFor("the key admitted", () => herald.client(key).create({ notification: email("k4") }));
    const killed = await herald.db.pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'herald-api-keys'",
    );
    expect(killed.rowCount).toBe(1);
    // The table read before stays in use meanwhile.
    await herald.client(key).create({ notification: email("k4-during") });
    // Revoked while the session may be gone: the new session's first read brings it in.
    await keys(herald, ["revoke", id]);
    await waitFor("the revocation heard", async () => (await rejection(herald.client(key).create({ notification: email("k4-after") }))).message === "API key revoked");
  });
});

describe("stored API keys, the periodic reload", () => {
  let herald: TestHerald;
  beforeAll(async () => {
    herald = await startTestHerald({ roles: ["server"], env: { HERALD_API_KEY_REFRESH_MS: "200" } });
  });
  afterAll(async () => {
    await herald?.stop();
  });

  it("brings in a change made without a notification, and writes when each key was last used", { timeout: 60_000 }, async () => {
    const { id, key } = await createKey(herald, "acme");
    await waitFor("the key admitted", () => herald.client(key).create({ notification: email("p1") }));
    await waitFor("last_used_at written", async () => {
      const r = await herald.db.pool.query<{ last_used_at: Date | null }>("SELECT last_used_at FROM api_keys WHERE id = $1", [id]);
      return r.rows[0]?.last_used_at ?? undefined;
    });
    // A change no NOTIFY announces (a restore, a hand edit): the next reload finds it.
    await herald.db.pool.query("UPDATE api_keys SET revoked_at = now() WHERE id = $1", [id]);
    await waitFor("the hand-made revocation found", async () => (await rejection(herald.client(key).create({ notification: email("p2") }))).message === "API key revoked");
    expect(await metricValue(herald.rt.metrics, "herald_api_keys_loaded")).toBe(1);
    expect(await metricValue(herald.rt.metrics, "herald_api_keys_reloaded_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 60);
  });
});
