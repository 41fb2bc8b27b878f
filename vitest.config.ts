import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration, interop and fault suites share one RabbitMQ; unique names keep them apart,
    // but two cores make broker-heavy files in parallel slower, not faster.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Our own error paths must never leave a stray rejection behind.
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
