import { describe, expect, it } from "vitest";
import { recordKey } from "../../src/outbox/records.js";
import { tenantOfKey } from "../../src/workers/record-runner.js";

describe("tenantOfKey", () => {
  it("reads the tenant of a record's key, and none from a key without one", () => {
    expect(tenantOfKey(recordKey("tenant-a", "user/with/slashes"))).toBe("tenant-a");
    // Records from before keys carried the tenant (the bare user id), and keyless records, share one turn.
    expect(tenantOfKey("ada")).toBe("");
    expect(tenantOfKey("/odd")).toBe("");
    expect(tenantOfKey(null)).toBe("");
    expect(tenantOfKey(undefined)).toBe("");
  });
});
