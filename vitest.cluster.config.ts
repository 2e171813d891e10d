import { defineConfig } from "vitest/config";

// The replicated-cluster test (test/cluster/): three Kafka brokers of its own, one killed under
// load. Kept out of `npm test` while it is not reliable: in about one run in nine, a couple of
// notifications stayed QUEUED after the broker's loss (README, "Losing a Kafka broker"), which
// is an open defect, not a flaky wait. `npm run test:cluster` runs it.
export default defineConfig({
  test: {
    include: ["test/cluster/**/*.test.ts"],
    maxWorkers: 1,
    testTimeout: 400_000,
    hookTimeout: 300_000,
  },
});
