import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { quotaOf, quotasOn } from "../../src/config-quotas.js";

const keys = { HERALD_API_KEYS: "tenant-a:key-a-0123456789,tenant-b:key-b-0123456789" };
const load = (env: Record<string, string>) => loadConfig({ ...keys, ...env }, "production").quotas;

describe("tenant quota configuration", () => {
  it("is off by default", () => {
    const quotas = load({});
    expect(quotasOn(quotas)).toBe(false);
    expect(quotaOf(quotas, "tenant-a")).toBeNull();
  });

  it("reads a default for every tenant, burst one second's worth unless given", () => {
    expect(quotaOf(load({ HERALD_TENANT_QUOTA: "50/s burst 100" }), "tenant-b")).toEqual({ perSecond: 50, burst: 100 });
    expect(quotaOf(load({ HERALD_TENANT_QUOTA: "  20/s " }), "tenant-a")).toEqual({ perSecond: 20, burst: 20 });
    expect(quotaOf(load({ HERALD_TENANT_QUOTA: "0.5/s" }), "tenant-a")).toEqual({ perSecond: 0.5, burst: 1 });
    expect(quotaOf(load({ HERALD_TENANT_QUOTA: "off" }), "tenant-a")).toBeNull();
  });

  it("overrides per tenant, off exempting one, and a tenant with no override keeps the default", () => {
    const quotas = load({ HERALD_TENANT_QUOTA: "10/s", HERALD_TENANT_QUOTAS: "tenant-a=1000/s burst 2000, tenant-b = off" });
    expect(quotasOn(quotas)).toBe(true);
    expect(quotaOf(quotas, "tenant-a")).toEqual({ perSecond: 1000, burst: 2000 });
    expect(quotaOf(quotas, "tenant-b")).toBeNull();
    expect(quotaOf(quotas, "tenant-c")).toEqual({ perSecond: 10, burst: 10 });
    // Overrides alone limit only the tenants they name.
    const only = load({ HERALD_TENANT_QUOTAS: "tenant-b=5/s burst 7" });
    expect(quotaOf(only, "tenant-a")).toBeNull();
    expect(quotaOf(only, "tenant-b")).toEqual({ perSecond: 5, burst: 7 });
  });

  it("reads overrides from a file, one a line, with comments", () => {
    const file = join(mkdtempSync(join(tmpdir(), "herald-quotas-")), "quotas");
    writeFileSync(file, "# heavy senders\ntenant-a=100/s burst 300  # the importer\n\ntenant-b=off\n");
    const quotas = load({ HERALD_TENANT_QUOTAS_FILE: file });
    expect(quotaOf(quotas, "tenant-a")).toEqual({ perSecond: 100, burst: 300 });
    expect(quotaOf(quotas, "tenant-b")).toBeNull();
  });

  it("refuses what it cannot honour, naming the variable, the entry and the rule", () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ HERALD_TENANT_QUOTA: "50" }, 'HERALD_TENANT_QUOTA: expected "<rate>/s", "<rate>/s burst <n>" or "off", got "50"'],
      [{ HERALD_TENANT_QUOTA: "50/m" }, 'HERALD_TENANT_QUOTA: expected "<rate>/s", "<rate>/s burst <n>" or "off", got "50/m"'],
      [{ HERALD_TENANT_QUOTA: "-5/s" }, 'HERALD_TENANT_QUOTA: expected "<rate>/s", "<rate>/s burst <n>" or "off", got "-5/s"'],
      [{ HERALD_TENANT_QUOTA: "0/s" }, "HERALD_TENANT_QUOTA: rate must be in (0, 1000000] per second, got 0"],
      [{ HERALD_TENANT_QUOTA: "2000000/s" }, "HERALD_TENANT_QUOTA: rate must be in (0, 1000000] per second, got 2000000"],
      [{ HERALD_TENANT_QUOTA: "5/s burst 0" }, "HERALD_TENANT_QUOTA: burst must be an integer in [1, 10000000], got 0"],
      [{ HERALD_TENANT_QUOTA: "5/s burst 2.5" }, 'HERALD_TENANT_QUOTA: expected "<rate>/s", "<rate>/s burst <n>" or "off", got "5/s burst 2.5"'],
      [{ HERALD_TENANT_QUOTAS: "tenant-a:5/s" }, 'HERALD_TENANT_QUOTAS: expected entries "<tenant>=<rate>/s [burst <n>]" or "<tenant>=off", got "tenant-a:5/s"'],
      [{ HERALD_TENANT_QUOTAS: "=5/s" }, 'HERALD_TENANT_QUOTAS: expected entries "<tenant>=<rate>/s [burst <n>]" or "<tenant>=off", got "=5/s"'],
      [{ HERALD_TENANT_QUOTAS: "tenant-z=5/s" }, 'HERALD_TENANT_QUOTAS: tenant "tenant-z" has no API key (HERALD_API_KEYS)'],
      [{ HERALD_TENANT_QUOTAS: "tenant-a=5/s,tenant-a=6/s" }, 'HERALD_TENANT_QUOTAS: tenant "tenant-a" is given more than once'],
      [{ HERALD_TENANT_QUOTAS: "tenant-a=fast" }, 'HERALD_TENANT_QUOTAS: tenant-a: expected "<rate>/s", "<rate>/s burst <n>" or "off", got "fast"'],
      [{ HERALD_TENANT_QUOTAS_FILE: "/nonexistent/quotas" }, "HERALD_TENANT_QUOTAS_FILE: cannot read /nonexistent/quotas"],
    ];
    for (const [env, message] of cases) expect(() => load(env), JSON.stringify(env)).toThrow(message);
  });
});
