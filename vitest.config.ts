import { configDefaults, defineConfig } from 'vitest/config';

/** Files that stop the broker app or drop every connection: they must run alone. */
const SERIAL = ['test/fault/**/*.serial.test.ts'];

export default defineConfig({
  test: {
    // Integration, interop and fault suites share one RabbitMQ; unique names keep them apart,
    // but two cores make broker-heavy files in parallel slower, not faster.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Our own error paths must never leave a stray rejection behind.
    dangerouslyIgnoreUnhandledErrors: false,
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...SERIAL, 'test/cluster/**'],
        },
      },
      {
        // groupOrder 1: starts after every 'main' file has finished, one file at a time.
        extends: true,
        test: {
          name: 'serial',
          include: SERIAL,
          fileParallelism: false,
          testTimeout: 180_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Three extra RabbitMQ nodes (scripts/cluster/cluster.sh), started by the globalSetup
        // in the background and stopped after the run; its files run last, one at a time.
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/cluster/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
