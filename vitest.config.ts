import { defineConfig } from "vitest/config";

// With NATS_URL every test file shares that server (and its one KEYBOX_EVENTS stream), so files
// run one at a time; otherwise each file starts its own nats-server and files run in parallel.
const sharedNats = Boolean(process.env.NATS_URL);

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    benchmark: { include: ["test/bench/**/*.bench.ts"] },
    pool: "forks",
    fileParallelism: !sharedNats,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
