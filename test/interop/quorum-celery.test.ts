/**
 * A Node client sending to a quorum task queue consumed by a real Celery 5.2 worker on
 * RabbitMQ: both sides declare the queue with `x-queue-type: quorum` (no 406), and the Python
 * worker is set up for a per-consumer prefetch as Celery 5.5 does it (celery_app.py with
 * CELERY_QUEUE_TYPE=quorum: task_queues with the queue argument, and the prefetch made per
 * consumer, which RabbitMQ requires on a quorum queue).
 */
import { describe, expect, it } from 'vitest';
import { ResultSet } from '../../src/celery/result.js';
import { silentLogger } from '../../src/logger.js';
import { waitUntil } from '../fixture.js';
import { listTable } from '../rabbitmq-admin.js';
import { useCeleryWorker } from './celery-pair.js';

describe('Node client -> Celery 5.2 worker on a quorum queue', () => {
  const pair = useCeleryWorker('quorum-py', {
    worker: { concurrency: 2, env: { CELERY_QUEUE_TYPE: 'quorum', CELERY_PREFETCH: '3' } },
    app: { settings: { task_default_queue_type: 'quorum' }, logger: silentLogger },
  });
  const { queue } = pair;

  it("the Node declaration matches the worker's quorum queue and tasks come back", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => pair.app.sendTask<number>('add', [i, 1])),
    );
    expect(await new ResultSet(results, pair.app.backend).joinNative({ timeout: 20_000 })).toEqual(
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
    expect(pair.worker.logs()).not.toMatch(/NOT_IMPLEMENTED|global qos/);
  });
});
