/**
 * The tasks module the bench's Node worker runs (`celery-amqp worker -A worker-tasks.js`):
 * `bench.add`, the task the Python client and the Node client send (bench/worker-bench.ts).
 * A definition's `name` sets the task name (the export name would give `worker-tasks.add`).
 *
 * @module
 */

/** `bench.add(x, y)`: the sum, as the Python app's task. */
export const add = {
  name: 'bench.add',
  handler: (args: unknown[]): number => Number(args[0]) + Number(args[1]),
};
