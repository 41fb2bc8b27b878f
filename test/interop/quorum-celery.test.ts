/**
 * A Node client sending to a quorum task queue consumed by a real Celery 5.2 worker on
 * RabbitMQ: both sides declare the queue with `x-queue-type: quorum` (no 406), and the Python
 * worker is set up for a per-consumer prefetch as Celery 5.5 does it (celery_app.py with
 * CELERY_QUEUE_TYPE=quorum: task_queues with the queue argument, and the prefetch made per
 * consumer, which RabbitMQ requires on a quorum queue).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { ResultSet } from '../../src/celery/result.js';
import { silentLogger } from '../../src/logger.js';
import { BROKER_URL, uid, waitUntil } from '../fixture.js';
import { listTable } from '../rabbitmq-admin.js';
import { dropQueue } from '../worker-fixture.js';
import { startCeleryWorker } from './python.js';
import type { CeleryWorker } from './python.js';

describe('Node client -> Celery 5.2 worker on a quorum queue', () => {
  const queue = uid('quorum-py');
  let worker: CeleryWorker;
  let app: Celery;

  beforeAll(async () => {
    worker = await startCeleryWorker({
      queue,
      concurrency: 2,
      env: { CELERY_BROKER_URL: BROKER_URL, CELERY_QUEUE_TYPE: 'quorum', CELERY_PREFETCH: '3' },
    });
    app = new Celery({
      broker: BROKER_URL,
      settings: { task_default_queue: queue, task_default_queue_type: 'quorum' },
      logger: silentLogger,
    });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await worker?.stop();
    await dropQueue(BROKER_URL, queue);
  }, 30_000);

  it("the Node declaration matches the worker's quorum queue and tasks come back", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => app.sendTask<number>('add', [i, 1])),
    );
    expect(await new ResultSet(results, app.backend).joinNative({ timeout: 20_000 })).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const [row] = (await listTable('queues', '/', ['name', 'durable', 'auto_delete', 'arguments'])).filter(
      ([name]) => name === queue,
    );
    expect(row).toEqual([queue, 'true', 'false', '[{"x-queue-type","quorum"}]']);
  });

  it('the Python worker consumes it with a per-consumer prefetch (concurrency x multiplier), none channel-wide', async () => {
    // Polled: under load rabbitmqctl can list the worker's consumer a moment late.
    const consumers = await waitUntil(
      async () => {
        const rows = (
          await listTable('consumers', '/', ['queue_name', 'channel_pid', 'prefetch_count'])
        ).filter(([name]) => name === queue);
        return rows.length > 0 ? rows : undefined;
      },
      { timeout: 15_000, interval: 250, what: `a consumer on ${queue}` },
    );
    expect(consumers.map(([, , prefetch]) => prefetch)).toEqual(['6']);
    const channel = (await listTable('channels', '/', ['pid', 'global_prefetch_count'])).find(
      ([pid]) => pid === consumers[0]?.[1],
    );
    expect(channel?.[1]).toBe('0');
    expect(worker.logs()).not.toMatch(/NOT_IMPLEMENTED|global qos/);
  });
});
