/**
 * The queues a Node worker declares on RabbitMQ under the settings that keep them valid on
 * RabbitMQ 4.x: quorum task queues (`task_create_missing_queue_type`) and exclusive mailbox
 * queues (`control_queue_exclusive`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Control } from '../../src/celery/control.js';
import { encodeTaskMessage } from '../../src/celery/task-message.js';
import { Connection } from '../../src/kombu/connection.js';
import { Producer } from '../../src/kombu/producer.js';
import { BROKER_URL, cleanupStack, uid, waitUntil } from '../fixture.js';
import { startWorker } from '../worker-fixture.js';

describe('Worker queue declarations (RabbitMQ)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('task_create_missing_queue_type=quorum: a quorum task queue, a per-consumer prefetch, tasks served', async () => {
    const { queue, worker } = await startWorker(
      cleanups,
      { add: ([a, b]) => Number(a) + Number(b) },
      { settings: { task_create_missing_queue_type: 'quorum' }, concurrency: 2 },
      BROKER_URL,
    );
    // The app's own sendTask would declare the queue classic (406): publish the message as is.
    const m = encodeTaskMessage({ task: 'add', args: [2, 3], ignoreResult: true });
    const conn = new Connection(BROKER_URL);
    cleanups.push(() => conn.close());
    const producer = new Producer(await conn.channel(), { autoDeclare: false });
    await producer.publish(m.body, {
      routingKey: queue,
      headers: m.headers,
      correlationId: m.properties.correlationId,
    });
    await waitUntil(() => worker.counters.succeeded === 1, { what: 'the task served from the quorum queue' });
    // Redeclaring it as a quorum queue passes; as a classic one RabbitMQ refuses (406).
    const ch = await conn.channel();
    await expect(
      ch.declareQueue({ queue: queue, durable: true, arguments: { 'x-queue-type': 'quorum' } }),
    ).resolves.toBeDefined();
    const other = await conn.channel();
    await expect(other.declareQueue({ queue: queue, durable: true })).rejects.toMatchObject({
      code: 'PRECONDITION_FAILED',
    });
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
