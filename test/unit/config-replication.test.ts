import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";

describe("topic replication configuration", () => {
  it("defaults to the broker's defaults (0), so a single local broker needs nothing", () => {
    const { replication, minInsyncReplicas } = loadConfig({}, "production").kafka;
    expect({ replication, minInsyncReplicas }).toEqual({ replication: 0, minInsyncReplicas: 0 });
  });

  it("reads HERALD_TOPIC_REPLICATION and HERALD_TOPIC_MIN_INSYNC_REPLICAS", () => {
    const { replication, minInsyncReplicas } = loadConfig({ HERALD_TOPIC_REPLICATION: "3", HERALD_TOPIC_MIN_INSYNC_REPLICAS: "2" }, "production").kafka;
    expect({ replication, minInsyncReplicas }).toEqual({ replication: 3, minInsyncReplicas: 2 });
  });

  it("refuses a min.insync.replicas no write could meet, and values out of range", () => {
    expect(() => loadConfig({ HERALD_TOPIC_REPLICATION: "2", HERALD_TOPIC_MIN_INSYNC_REPLICAS: "3" }, "production")).toThrow(
      "HERALD_TOPIC_MIN_INSYNC_REPLICAS: 3 exceeds HERALD_TOPIC_REPLICATION (2); no write could ever be acknowledged",
    );
    expect(() => loadConfig({ HERALD_TOPIC_REPLICATION: "-1" }, "production")).toThrow('HERALD_TOPIC_REPLICATION: expected an integer in [0, 32], got "-1"');
  });
});
