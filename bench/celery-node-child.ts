/**
 * celery-node's worker (when `npm i --no-save celery-node` installed it) on one queue, with
 * results in Redis (its amqp result backend is Celery 4's, which Celery 5.2 clients cannot
 * read): `node celery-node-child.js <broker> <redis url> <queue>`. Prints `ready` once it
 * consumes.
 *
 * @module
 */

/** The part of celery-node's API used here. */
interface CeleryNodeWorker {
  register(name: string, handler: (...args: unknown[]) => unknown): void;
  start(): Promise<unknown>;
}
interface CeleryNode {
  createWorker(broker: string, backend: string, queue: string): CeleryNodeWorker;
}

const [broker = '', redis = '', queue = ''] = process.argv.slice(2);
// A variable specifier: the bench compiles without celery-node installed.
const specifier = 'celery-node';
const imported: { default?: CeleryNode } & Partial<CeleryNode> = await import(specifier);
const celery = imported.default ?? (imported as CeleryNode);
const worker = celery.createWorker(broker, redis, queue);
worker.register('bench.add', (a, b) => Number(a) + Number(b));
await worker.start();
process.stdout.write('ready\n');
