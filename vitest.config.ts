import { configDefaults, defineConfig } from 'vitest/config';

/** Files that stop the broker app or drop every connection: they must run alone. */
const SERIAL = ['test/fault/**/*.serial.test.ts'];

/** Runs on the embedded broker only: needs nothing from the machine. */
const UNIT = ['test/unit/**/*.test.ts'];

/** Needs the three-node RabbitMQ cluster of scripts/cluster/cluster.sh: its own project. */
const CLUSTER = ['test/cluster/**/*.test.ts'];

/**
 * Starts RabbitMQ and installs the Python peers when they are missing (or fails at once
 * with the commands to run), so that `npm test` alone passes on a fresh machine. Vitest runs
 * a project's global setup only when that project has files to run: `vitest run test/unit`
 * never touches the machine.
 */
const MACHINE_SETUP = ['test/setup/global-setup.ts'];

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
        test: { name: 'unit', include: UNIT },
      },
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...UNIT, ...SERIAL, ...CLUSTER],
          globalSetup: MACHINE_SETUP,
        },
      },
      {
        // groupOrder 1: starts after every 'unit' and 'main' file has finished, one file at a time.
        extends: true,
        test: {
          name: 'serial',
          include: SERIAL,
          fileParallelism: false,
          testTimeout: 180_000,
          globalSetup: MACHINE_SETUP,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Three extra RabbitMQ nodes (scripts/cluster/cluster.sh), started by the globalSetup
        // in the background and stopped after the run; its files run last, one at a time.
        extends: true,
        test: {
          name: 'cluster',
          include: CLUSTER,
          // The machine first (RabbitMQ installed, the Python peers for the Celery worker
          // case), then the cluster's nodes; vitest runs a project's setups in this order.
          globalSetup: [...MACHINE_SETUP, 'test/cluster/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
