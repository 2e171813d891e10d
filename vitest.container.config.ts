import { defineConfig } from "vitest/config";

// The container tests (test/container/): the image built by scripts/image.sh, and the compose
// deployment. Kept out of `npm test` because a first build takes minutes; run one file at a
// time, as `npm run test:image` and `npm run test:compose` do.
export default defineConfig({
  test: {
    include: ["test/container/**/*.test.ts"],
    maxWorkers: 1,
    testTimeout: 180_000,
    hookTimeout: 1_800_000,
  },
});
