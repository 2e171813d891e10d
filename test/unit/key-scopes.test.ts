import { describe, expect, it } from "vitest";
import { pino } from "pino";
import type { DescFile, DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { readdirSync } from "node:fs";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import { OperationsService } from "../../gen/herald/v1/operations_pb.js";
import { RecipientService } from "../../gen/herald/v1/recipient_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { hashApiKey } from "../../src/domain/api-keys.js";
import { generateKey, keyDigest, keyIdOf, parseScopes, type Scope } from "../../src/domain/key-format.js";
import { requiredScope, scopeTable, scopedServices } from "../../src/server/method-scopes.js";
import { createEdge } from "../../src/server/edge.js";
import { callKey } from "../../src/server/call-info.js";
import type { KeyLookup, StoredKey } from "../../src/keys/key-table.js";
import { refusalReasons, type RefusalReason } from "../../src/metrics/api-keys.js";

// The scopes of the stored API keys: one table names the scope of every RPC, and the edge refuses
// a key that lacks it, or that is unknown, revoked or expired, before any handler runs.

/** Every file descriptor under gen/herald/v1, read from the folder: a new .proto file is covered too. */
async function genFiles(): Promise<DescFile[]> {
  const dir = new URL("../../gen/herald/v1/", import.meta.url);
  const modules = await Promise.all(readdirSync(dir).filter((f) => f.endsWith("_pb.ts")).map((f) => import(new URL(f, dir).href) as Promise<Record<string, unknown>>));
  return modules.flatMap((m) => Object.values(m).filter((v): v is DescFile => (v as { kind?: unknown } | null)?.kind === "file"));
}

describe("the scope table", () => {
  it("names a scope for every method of every service in gen/herald/v1, and nothing else", async () => {
    const files = await genFiles();
    expect(files.length).toBeGreaterThanOrEqual(8);
    const methods = files.flatMap((f) => f.services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`)));
    expect(methods.length).toBeGreaterThan(25);
    const table = scopeTable();
    expect(methods.filter((m) => !table.has(m))).toEqual([]);
    expect([...table.keys()].filter((m) => !methods.includes(m))).toEqual([]);
    expect(new Set(scopedServices.map((s) => s.typeName))).toEqual(new Set(files.flatMap((f) => f.services.map((s) => s.typeName))));
  });

  it("sends with send, reads with read, and keeps changes and the deployment-wide view for admin", () => {
    expect(requiredScope(NotificationService.method.create)).toBe("send");
    expect(requiredScope(NotificationService.method.createBatch)).toBe("send");
    expect(requiredScope(NotificationService.method.cancel)).toBe("send");
    expect(requiredScope(NotificationService.method.get)).toBe("read");
    expect(requiredScope(NotificationService.method.watchStatus)).toBe("read");
    expect(requiredScope(TemplateService.method.listTemplates)).toBe("read");
    expect(requiredScope(TemplateService.method.putTemplate)).toBe("admin");
    expect(requiredScope(RecipientService.method.eraseRecipient)).toBe("admin");
    expect(requiredScope(OperationsService.method.getOverview)).toBe("admin");
  });

  it("asks admin of a method it does not list (an omission fails closed)", () => {
    expect(requiredScope(Health.method.check)).toBe("admin");
  });
});

describe("the key format", () => {
  it("makes hk_<id>_<secret> keys whose id it reads back, and whose digest it keeps", () => {
    const a = generateKey();
    const b = generateKey();
    expect(a.key).toMatch(/^hk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(keyIdOf(a.key)).toBe(a.id);
    expect(a.hash.equals(keyDigest(a.key))).toBe(true);
    expect(a.key).not.toBe(b.key);
    expect(keyIdOf("key-tenant-a-0123")).toBeUndefined();
    expect(keyIdOf(`${a.key}x`)).toBeUndefined();
  });

  it("parses scopes in the table's order and names a bad one", () => {
    expect(parseScopes("admin, send,send")).toEqual(["send", "admin"]);
    expect(() => parseScopes("send,write")).toThrow('unknown scope "write"');
    expect(() => parseScopes(" , ")).toThrow("one or more of send, read, admin");
  });
});

describe("edge.admit with stored keys", () => {
  const NOW = Date.UTC(2030, 0, 1);
  const made = generateKey();
  const readOnly = generateKey();
  const revoked = generateKey();
  const expired = generateKey();
  const stored = (k: typeof made, scopes: Scope[], extra: Partial<StoredKey> = {}): StoredKey => ({
    id: k.id,
    tenant: "acme",
    hash: k.hash,
    scopes: new Set(scopes),
    expiresAt: null,
    revokedAt: null,
    ...extra,
  });
  const rows = new Map<string, StoredKey>([
    [made.id, stored(made, ["send", "read"], { expiresAt: NOW + 1 })],
    [readOnly.id, stored(readOnly, ["read"])],
    [revoked.id, stored(revoked, ["send"], { revokedAt: NOW - 1 })],
    [expired.id, stored(expired, ["send"], { expiresAt: NOW })],
  ]);
  const used: string[] = [];
  const storedKeys: KeyLookup = { get: (id) => rows.get(id), used: (id) => void used.push(id) };
  const counts = Object.fromEntries(refusalReasons.map((r) => [r, 0])) as Record<RefusalReason, number>;
  const refusals = Object.fromEntries(refusalReasons.map((r) => [r, { inc: () => void counts[r]++ }])) as Record<RefusalReason, { inc(): void }>;
  const edge = createEdge({
    apiKeys: new Map([[hashApiKey("env-key"), "env-tenant"]]),
    storedKeys,
    refusals,
    clock: { now: () => NOW },
    log: pino({ level: "silent" }),
  });

  function admit(key: string | undefined, method: DescMethod = NotificationService.method.create) {
    const values = createContextValues();
    try {
      edge.admit(method, new Headers(key === undefined ? {} : { authorization: `Bearer ${key}` }), values);
      return { code: "OK", call: values.get(callKey) };
    } catch (e) {
      const err = e as ConnectError;
      return { code: Code[err.code], message: err.rawMessage };
    }
  }

  it("admits a stored key for its tenant under its id, and notes its use", () => {
    expect(admit(made.key)).toMatchObject({ code: "OK", call: { tenant: "acme", keyId: made.id } });
    expect(used).toContain(made.id);
  });

  it("refuses a method outside the key's scopes with PERMISSION_DENIED naming the scope", () => {
    expect(admit(readOnly.key, NotificationService.method.get)).toMatchObject({ code: "OK" });
    expect(admit(readOnly.key)).toEqual({ code: "PermissionDenied", message: 'API key lacks the "send" scope, which NotificationService/Create needs' });
    expect(admit(made.key, TemplateService.method.putTemplate)).toEqual({ code: "PermissionDenied", message: 'API key lacks the "admin" scope, which TemplateService/PutTemplate needs' });
  });

  it("says revoked and expired to the key's holder, and unknown to anyone else", () => {
    expect(admit(revoked.key)).toEqual({ code: "Unauthenticated", message: "API key revoked" });
    expect(admit(expired.key)).toEqual({ code: "Unauthenticated", message: "API key expired" });
    // The right id with another secret: nothing about the key is told.
    const forged = `hk_${revoked.id}_${generateKey().key.slice(-43)}`;
    expect(admit(forged)).toEqual({ code: "Unauthenticated", message: "unknown API key" });
    expect(admit(undefined)).toEqual({ code: "Unauthenticated", message: "missing API key: send 'authorization: Bearer <api key>'" });
  });

  it("gives env keys every scope, as before", () => {
    for (const method of [NotificationService.method.create, TemplateService.method.putTemplate, OperationsService.method.getOverview]) {
      expect(admit("env-key", method)).toMatchObject({ code: "OK", call: { tenant: "env-tenant" } });
    }
  });

  it("counts each refusal by reason", () => {
    const before = { ...counts };
    admit(revoked.key);
    admit(expired.key);
    admit(readOnly.key);
    admit("nope");
    admit(undefined);
    expect(Object.fromEntries(refusalReasons.map((r) => [r, counts[r] - before[r]]))).toEqual({ missing: 1, unknown: 1, expired: 1, revoked: 1, scope: 1 });
  });
});
