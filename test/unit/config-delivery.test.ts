import { describe, expect, it } from "vitest";
import { loadDeliveryConfig } from "../../src/config-delivery.js";
import { ConfigError } from "../../src/config-env.js";

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
