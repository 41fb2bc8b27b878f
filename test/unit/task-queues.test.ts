/**
 * The app's queue table and task routes as Celery 5.5/5.6 builds them (quorum queue types,
 * exchanges of queues created on demand, native delayed delivery routing keys), and the
 * Node Worker's quorum detection, on the embedded broker.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { TaskQueues, taskRoute } from '../../src/celery/task-queues.js';
import type { TaskQueueSettings } from '../../src/celery/task-queues.js';
import { ArgumentError, ConnectionError } from '../../src/errors.js';
import { calculateRoutingKey, delayQueueArguments } from '../../src/kombu/native-delayed-delivery.js';
import { silentLogger } from '../../src/logger.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { startWorker } from '../worker-fixture.js';

const BASE: TaskQueueSettings = {
  task_default_queue: 'celery',
  task_default_exchange: 'celery',
  task_default_exchange_type: 'direct',
  task_default_routing_key: 'celery',
  task_default_queue_type: 'classic',
  task_create_missing_queue_type: 'classic',
  task_create_missing_queue_exchange_type: null,
};

describe('TaskQueues (Celery app.amqp.queues)', () => {
  it('classic queues carry no x-queue-type; quorum ones carry it, for the default queue or those made on demand', () => {
    const classic = new TaskQueues(BASE);
    expect(classic.get('celery').queueArguments).toBeUndefined();
    expect(classic.get('other').queueArguments).toBeUndefined();
    expect(classic.quorumQueue()).toBeUndefined();

    const byDefault = new TaskQueues({ ...BASE, task_default_queue_type: 'quorum' });
    expect(byDefault.get('celery').queueArguments).toEqual({ 'x-queue-type': 'quorum' });
    expect(byDefault.get('other').queueArguments).toBeUndefined();
    // The default queue is in the table from the start, consumed or not (as in Celery).
    expect(byDefault.quorumQueue()).toBe('celery');

    const missing = new TaskQueues({ ...BASE, task_create_missing_queue_type: 'quorum' });
    expect(missing.get('celery').queueArguments).toBeUndefined();
    expect(missing.quorumQueue()).toBeUndefined();
    expect(missing.get('math')).toMatchObject({ durable: true, autoDelete: false, routingKey: 'math' });
    expect(missing.get('math').queueArguments).toEqual({ 'x-queue-type': 'quorum' });
    expect(missing.quorumQueue()).toBe('math');
  });

  it('a queue made on demand gets a direct exchange of its name unless task_create_missing_queue_exchange_type', () => {
    const topicDefault = new TaskQueues({ ...BASE, task_default_exchange_type: 'topic' });
    expect(topicDefault.get('celery').exchange).toMatchObject({
      name: 'celery',
      type: 'topic',
      durable: true,
    });
    // kombu's Exchange(name): direct, whatever task_default_exchange_type says.
    expect(topicDefault.get('math').exchange).toMatchObject({ name: 'math', type: 'direct', durable: true });
    const topicMissing = new TaskQueues({ ...BASE, task_create_missing_queue_exchange_type: 'topic' });
    expect(topicMissing.get('math').exchange).toMatchObject({ name: 'math', type: 'topic' });
  });

  it('the app refuses a queue type other than classic or quorum, naming the setting', () => {
    expect(
      () => new Celery({ broker: 'memory://', settings: { task_default_queue_type: 'stream' as 'quorum' } }),
    ).toThrow(ArgumentError);
    expect(
      () =>
        new Celery({
          broker: 'memory://',
          settings: { task_create_missing_queue_type: 'Quorum' as 'quorum' },
        }),
    ).toThrow(/task_create_missing_queue_type: invalid queue type "Quorum"/);
  });
});

describe('taskRoute (Celery send_task / send_task_message)', () => {
  const table = new TaskQueues({ ...BASE, task_create_missing_queue_exchange_type: 'topic' });

  it("a direct queue goes to '' with its name; a topic queue to its exchange with its key", () => {
    const direct = new TaskQueues(BASE).get('celery');
    expect(taskRoute(direct, {})).toEqual({
      exchange: '',
      routingKey: 'celery',
      declare: [direct],
      delayed: false,
    });
    const topic = table.get('math');
    expect(taskRoute(topic, {})).toEqual({
      exchange: 'math',
      routingKey: 'math',
      declare: [topic],
      delayed: false,
    });
    expect(taskRoute(topic, { exchange: 'x', routingKey: 'k' })).toMatchObject({
      exchange: 'x',
      routingKey: 'k',
    });
  });

  it('a delay of whole seconds on a topic queue goes to celery_delayed_27, bits first, nothing declared', () => {
    const topic = table.get('math');
    expect(taskRoute(topic, {}, 5.9)).toEqual({
      exchange: 'celery_delayed_27',
      routingKey: `${'0.'.repeat(25)}1.0.1.math`,
      declare: [],
      delayed: true,
    });
    // Under one whole second kombu refuses the countdown: the normal route, the eta in the message.
    expect(taskRoute(topic, {}, 0.5)).toMatchObject({ exchange: 'math', delayed: false });
    expect(taskRoute(new TaskQueues(BASE).get('celery'), {}, 5)).toMatchObject({
      exchange: '',
      delayed: false,
    });
  });

  it("calculateRoutingKey is kombu's: 28 binary digits joined by dots, then the key", () => {
    expect(calculateRoutingKey(1, 'a')).toBe(`${'0.'.repeat(27)}1.a`);
    expect(calculateRoutingKey(2 ** 28 - 1, 'a.b')).toBe(`${'1.'.repeat(28)}a.b`);
    expect(() => calculateRoutingKey(0, 'a')).toThrow(ArgumentError);
    expect(() => calculateRoutingKey(1, '')).toThrow(ArgumentError);
    expect(delayQueueArguments(3, 'quorum')).toEqual({
      'x-queue-type': 'quorum',
      'x-overflow': 'reject-publish',
      'x-message-ttl': 8000,
      'x-dead-letter-exchange': 'celery_delayed_2',
      'x-dead-letter-strategy': 'at-least-once',
    });
    expect(delayQueueArguments(0, 'classic')).toEqual({
      'x-queue-type': 'classic',
      'x-overflow': 'reject-publish',
      'x-message-ttl': 1000,
      'x-dead-letter-exchange': 'celery_delayed_delivery',
    });
  });
});

describe('Worker on quorum queues (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  function vhostUrl(): string {
    // A vhost of its own: the delayed-delivery ladder names are global.
    return `memory://localhost/${uid('quorum')}`;
  }

  it('detects the quorum queue and consumes with a per-consumer prefetch', async () => {
    const url = vhostUrl();
    const { queue, client, worker } = await startWorker(
      cleanups,
      { add: ([a, b]) => Number(a) + Number(b) },
      { appSettings: { task_default_queue_type: 'quorum' }, concurrency: 2 },
      url,
    );
    const r = await client.sendTask<number>('add', [1, 2]);
    expect(await r.get({ timeout: 5000 })).toBe(3);
    // The counter moves once the store is confirmed, which may be after the client read it.
    await waitUntil(() => worker.counters.succeeded === 1, { what: 'the success counted' });
    const vhost = decodeURIComponent(new URL(url).pathname.slice(1));
    expect(MemoryBroker.get().queueInfo(vhost, queue)?.arguments).toEqual({ 'x-queue-type': 'quorum' });
  });

  it('with worker_detect_quorum_queues=false the global prefetch is refused (540) and start fails', async () => {
    const err: unknown = await startWorker(
      cleanups,
      {},
      {
        appSettings: { task_default_queue_type: 'quorum' },
        settings: { worker_detect_quorum_queues: false },
      },
      vhostUrl(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'NOT_IMPLEMENTED' });
  });

  it('a delayed send before any ladder exists fails with 404 and says how to get one', async () => {
    const url = vhostUrl();
    const vhost = decodeURIComponent(new URL(url).pathname.slice(1));
    const queue = uid('topic');
    const app = new Celery({
      broker: url,
      settings: {
        task_default_queue: queue,
        task_default_queue_type: 'quorum',
        task_default_exchange_type: 'topic',
      },
      logger: silentLogger,
    });
    cleanups.push(() => app.close());
    const err: unknown = await app
      .sendTask('tick', [], {}, { countdown: 5, ignoreResult: true })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_FOUND' });
    expect((err as Error).message).toMatch(
      /no exchange 'celery_delayed_27'.*app\.declareNativeDelayedDelivery\(\)/s,
    );
    await app.declareNativeDelayedDelivery();
    await app.sendTask('tick', [], {}, { countdown: 5, ignoreResult: true });
    // 5 s = bits 2 and 0: the message waits in the level-2 queue first.
    expect(MemoryBroker.get().queueInfo(vhost, 'celery_delayed_2')?.messageCount).toBe(1);
  });

  it('a countdown task to a topic quorum queue goes through the ladder and runs when due', async () => {
    const url = vhostUrl();
    const ran: number[] = [];
    const { client, worker } = await startWorker(
      cleanups,
      { tick: () => void ran.push(Date.now()) },
      {
        appSettings: { task_default_queue_type: 'quorum', task_default_exchange_type: 'topic' },
        logger: silentLogger,
      },
      url,
    );
    const vhost = decodeURIComponent(new URL(url).pathname.slice(1));
    const sent = Date.now();
    await client.sendTask('tick', [], {}, { countdown: 1, ignoreResult: true });
    // One second is bit 0: the message waits in the level-0 queue, not in the worker.
    expect(MemoryBroker.get().queueInfo(vhost, 'celery_delayed_0')?.messageCount).toBe(1);
    expect(worker.counters.received).toBe(0);
    await waitUntil(() => worker.counters.succeeded === 1, { what: 'the delayed task run' });
    expect(ran[0]! - sent).toBeGreaterThanOrEqual(1000);
  });
});
