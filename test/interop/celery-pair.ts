/**
 * A Python Celery 5 worker and a Node Celery app sharing one fresh task queue, for the length
 * of a describe block: both start in `beforeAll`; the app, the worker, the queue and its
 * exchange go in `afterAll`.
 */
import { afterAll, beforeAll } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import type { CeleryOptions } from '../../src/celery/app.js';
import { BROKER_URL, uid } from '../fixture.js';
import { dropQueue } from '../worker-fixture.js';
import { startCeleryWorker } from './python.js';
import type { CeleryWorker, CeleryWorkerOptions } from './python.js';

/** What {@link useCeleryWorker} gives a describe block (read inside tests, after beforeAll). */
export interface CeleryPair {
  /** The task queue both consume or send to. */
  readonly queue: string;
  /** The Python worker. */
  readonly worker: CeleryWorker;
  /** The Node app, its task_default_queue set to {@link queue}. */
  readonly app: Celery;
}

/** Options of {@link useCeleryWorker}. */
export interface CeleryPairOptions {
  /** The Python worker's options, but its queue. @default {} */
  worker?: Omit<CeleryWorkerOptions, 'queue'>;
  /** The Node app's options, but its broker; `settings.task_default_queue` is the queue. @default {} */
  app?: Omit<CeleryOptions, 'broker'>;
}

/**
 * Registers the hooks that start and stop a Python worker and a Node app on a queue named
 * `prefix-xxxxxxxx`.
 *
 * @example
 * ```ts
 * const pair = useCeleryWorker('rpc-py', { worker: { concurrency: 2 } });
 * it('adds', async () => expect(await (await pair.app.sendTask('add', [2, 3])).get()).toBe(5));
 * ```
 */
export function useCeleryWorker(prefix: string, options: CeleryPairOptions = {}): CeleryPair {
  const queue = uid(prefix);
  let worker: CeleryWorker | undefined;
  let app: Celery | undefined;
  beforeAll(async () => {
    worker = await startCeleryWorker({ ...options.worker, queue });
    app = new Celery({
      ...options.app,
      broker: BROKER_URL,
      settings: { ...options.app?.settings, task_default_queue: queue },
    });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await worker?.stop();
    await dropQueue(BROKER_URL, queue);
  }, 30_000);
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the ${what} of ${queue} did not start (see beforeAll)`);
    return value;
  };
  return {
    queue,
    get worker() {
      return started(worker, 'Python worker');
    },
    get app() {
      return started(app, 'Node app');
    },
  };
}
