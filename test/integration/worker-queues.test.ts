/**
 * The queues a Node worker declares on RabbitMQ under the settings that keep them valid on
 * RabbitMQ 4.x: quorum task queues (Celery 5.5's `task_default_queue_type`, 5.6's
 * `task_create_missing_queue_type`, with `worker_detect_quorum_queues`) and exclusive mailbox
 * queues (`control_queue_exclusive`).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { Control } from '../../src/celery/control.js';
import { ConnectionError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { BROKER_URL, cleanupStack, uid, waitUntil } from '../fixture.js';
import { listTable, privateVhost } from '../rabbitmq-admin.js';
import { dropQueue, startWorker } from '../worker-fixture.js';

describe('Worker queue declarations (RabbitMQ)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());
  // Quorum queues bring the native delayed delivery ladder (celery_delayed_*, global
  // names): those tests run in a vhost of their own.
  const vhostCleanups = cleanupStack();
  let vhost = '';
  let url = '';
  beforeAll(async () => {
    ({ vhost, url } = await privateVhost(vhostCleanups, 'quorum'));
  }, 60_000);
  afterAll(() => vhostCleanups.run(), 60_000);

  it('task_default_queue_type=quorum: sendTask declares a quorum queue, the worker serves it with a per-consumer prefetch', async () => {
    const { queue, client, worker } = await startWorker(
      cleanups,
      { add: ([a, b]) => Number(a) + Number(b) },
      { appSettings: { task_default_queue_type: 'quorum' }, concurrency: 2, prefetchMultiplier: 3 },
      url,
    );
    // The client declares the queue as the worker did (a classic declaration would be a 406).
    const r = await client.sendTask<number>('add', [2, 3]);
    expect(await r.get({ timeout: 10_000 })).toBe(5);
    // The counter moves once the store is confirmed, which may be after the client read it.
    await waitUntil(() => worker.counters.succeeded === 1, { what: 'the success counted' });
    const [row] = (await listTable('queues', vhost, ['name', 'durable', 'auto_delete', 'arguments'])).filter(
      ([name]) => name === queue,
    );
    expect(row).toEqual([queue, 'true', 'false', '[{"x-queue-type","quorum"}]']);
    // concurrency x prefetchMultiplier, on the consumer; nothing channel-wide (540 otherwise).
    const consumers = (
      await listTable('consumers', vhost, ['queue_name', 'channel_pid', 'prefetch_count'])
    ).filter(([name]) => name === queue);
    expect(consumers.map(([, , prefetch]) => prefetch)).toEqual(['6']);
    const channel = (
      await listTable('channels', vhost, ['pid', 'prefetch_count', 'global_prefetch_count'])
    ).find(([pid]) => pid === consumers[0]?.[1]);
    expect(channel?.slice(1)).toEqual(['6', '0']);
    // Redeclaring it as a classic queue is refused (406): it really is a quorum queue.
    const conn = new Connection(url);
    cleanups.push(() => conn.close());
    const ch = await conn.channel();
    await expect(ch.declareQueue({ queue: queue, durable: true })).rejects.toMatchObject({
      code: 'PRECONDITION_FAILED',
    });
  });

  it('task_create_missing_queue_type=quorum: a queue created on demand is a quorum queue', async () => {
    const conn = new Connection(url);
    cleanups.push(() => conn.close());
    const app = new Celery({ broker: conn, settings: { task_create_missing_queue_type: 'quorum' } });
    cleanups.push(() => app.close());
    const queue = uid('wq-missing');
    cleanups.push(() => dropQueue(url, queue));
    expect(app.quorumQueue()).toBeUndefined();
    await app.sendTask('add', [1, 1], {}, { queue, ignoreResult: true });
    expect(app.quorumQueue()).toBe(queue);
    const ch = await conn.channel();
    await expect(
      ch.declareQueue({ queue, durable: true, arguments: { 'x-queue-type': 'quorum' } }),
    ).resolves.toMatchObject({ messageCount: 1 });
  });

  it('worker_detect_quorum_queues=false keeps a global prefetch, which RabbitMQ refuses on a quorum queue (540)', async () => {
    const err: unknown = await startWorker(
      cleanups,
      {},
      {
        appSettings: { task_default_queue_type: 'quorum' },
        settings: { worker_detect_quorum_queues: false },
      },
      url,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'NOT_IMPLEMENTED', recoverable: false });
    expect(String((err as Error).message)).toContain('does not support global qos');
  });

  it('control_queue_exclusive: the mailbox queues are exclusive, and ping still answers', async () => {
    const settings = { control_queue_exclusive: true };
    const hostname = `${uid('node')}@queues`;
    const { client } = await startWorker(
      cleanups,
      {},
      { remoteControl: true, hostname, settings },
      BROKER_URL,
    );
    const control = new Control(client, settings);
    cleanups.push(() => control.close());
    expect(await control.ping({ destination: [hostname], timeout: 5000 })).toEqual([
      { [hostname]: { ok: 'pong' } },
    ]);
    // Another connection may not even look at an exclusive queue.
    const conn = new Connection(BROKER_URL);
    cleanups.push(() => conn.close());
    const ch = await conn.channel();
    await expect(
      ch.declareQueue({ queue: `${hostname}.celery.pidbox`, passive: true }),
    ).rejects.toMatchObject({
      code: 'RESOURCE_LOCKED',
    });
  });
});
