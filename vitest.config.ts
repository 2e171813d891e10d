import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The container tests build images (minutes on two cores): npm run test:image / test:compose.
    exclude: [...configDefaults.exclude, "test/container/**"],
    // Integration tests talk to real PostgreSQL, Redis and Kafka; names are unique
    // per test so files run in parallel, but the machine has 2 cores.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
