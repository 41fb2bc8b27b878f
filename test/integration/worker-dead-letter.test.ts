/**
 * What the Node Worker does with a task it cannot run, seen through a dead-letter exchange
 * on RabbitMQ: Celery 5.2 rejects (requeue=false) an unknown task after marking it failed
 * with NotRegistered (`Consumer.on_unknown_task`) and rejects an invalid one
 * (`on_invalid_task`), so on a queue with a DLX both end up dead-lettered. An ack would
 * drop them silently instead, which only shows once a DLX is configured.
 *
 * The DLX comes from a RabbitMQ policy, not from queue arguments: the worker declares its
 * queue with none, and a policy leaves that declaration matching.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { TaskError } from '../../src/celery/exceptions.js';
import { Worker } from '../../src/celery/worker.js';
import { DecodeError } from '../../src/errors.js';
import type { Channel } from '../../src/kombu/channel.js';
import { Connection } from '../../src/kombu/connection.js';
import type { Message } from '../../src/kombu/message.js';
import type { FieldTable } from '../../src/transport/types.js';
import { BROKER_URL, cleanupStack, uid, waitUntil } from '../fixture.js';
import { rabbitmqctl } from '../rabbitmq-admin.js';

/** A regular expression matching exactly `name` (policy patterns are regexes). */
const exactly = (name: string): string => `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;

describe('Worker on a task queue with a dead-letter exchange (RabbitMQ)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  /**
   * A task queue whose dead letters go, through a policy and a fanout DLX, to a queue of
   * their own; a client app and a worker app (separate connections) on the task queue; and
   * an admin channel that reads the dead-letter queue. All removed after the test.
   */
  async function setup(tasks: Record<string, () => unknown>) {
    const queue = uid('worker-dlx-q');
    const dlx = uid('worker-dlx');
    const dlq = uid('worker-dlq');
    const policy = uid('worker-dlx-policy');
    const admin = new Connection(BROKER_URL);
    // Registered first, so run last: the queues, exchanges and policy go after both apps closed.
    cleanups.push(async () => {
      const ch = await admin.channel();
      for (const q of [queue, dlq]) await ch.deleteQueue({ queue: q }).catch(() => undefined);
      for (const e of [queue, dlx]) await ch.deleteExchange({ exchange: e }).catch(() => undefined);
      await admin.close();
      await rabbitmqctl(['clear_policy', policy]);
    });
    const definition = JSON.stringify({ 'dead-letter-exchange': dlx });
    await rabbitmqctl(['set_policy', '--apply-to', 'queues', policy, exactly(queue), definition]);
    const ch = await admin.channel();
    await ch.declareExchange({ exchange: dlx, type: 'fanout', durable: false, autoDelete: false });
    await ch.declareQueue({ queue: dlq, durable: false, autoDelete: false });
    await ch.bindQueue({ queue: dlq, exchange: dlx, routingKey: '' });

    const client = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
    const server = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
    const worker = new Worker(server, { queue, tasks });
    cleanups.push(() => client.close());
    cleanups.push(() => server.close());
    cleanups.push(() => worker.close());
    await worker.start();
    return { queue, dlq, client, worker, admin: ch };
  }

  /** The first message to reach `queue` (polled with basic.get; rejects after 10 s). */
  function deadLetter(ch: Channel, queue: string): Promise<Message> {
    return waitUntil(() => ch.get({ queue, noAck: true }), {
      interval: 50,
      what: 'the rejected task message on the dead-letter queue',
    });
  }

  /** The first `x-death` entry RabbitMQ added to a dead-lettered message. */
  function firstDeath(m: Message): FieldTable {
    const deaths = m.headers['x-death'];
    expect(Array.isArray(deaths)).toBe(true);
    const [first] = deaths as FieldTable[];
    expect(first).toBeDefined();
    return first as FieldTable;
  }

  it('an unregistered task fails with NotRegistered and its message is rejected, so it is dead-lettered', async () => {
    const { queue, dlq, client, worker, admin } = await setup({});
    const r = await client.sendTask('no.such.task', [1, 2]);
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toMatchObject({ excType: 'NotRegistered', excArgs: ['no.such.task'] });

    const m = await deadLetter(admin, dlq);
    expect(m.headers['task']).toBe('no.such.task');
    expect(m.headers['id']).toBe(r.id);
    expect(m.payload).toEqual([[1, 2], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    const death = firstDeath(m);
    expect(death['reason']).toBe('rejected');
    expect(death['queue']).toBe(queue);
    expect(worker.counters.errors).toBe(0);
  });

  it('an unregistered task with an invalid eta still fails with NotRegistered and is dead-lettered', async () => {
    // Celery looks the task up before parsing eta/expires (on_unknown_task comes before the
    // strategy that raises InvalidTaskError), so the client still learns why.
    const { dlq, client, admin } = await setup({});
    const r = await client.sendTask('no.such.task', [], {}, { headers: { eta: 'not a date' } });
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ excType: 'NotRegistered', excArgs: ['no.such.task'] });

    const m = await deadLetter(admin, dlq);
    expect(m.headers['id']).toBe(r.id);
    expect(firstDeath(m)['reason']).toBe('rejected');
  });

  it('an invalid message for a registered task (bad eta) is rejected without a result, so it is dead-lettered', async () => {
    const ran: unknown[] = [];
    const { queue, dlq, client, worker, admin } = await setup({ add: () => ran.push('add') });
    const invalid: Error[] = [];
    worker.on('invalid', (err) => invalid.push(err));
    const r = await client.sendTask('add', [1, 2], {}, { headers: { eta: 'not a date' } });

    const m = await deadLetter(admin, dlq);
    expect(m.headers['id']).toBe(r.id);
    const death = firstDeath(m);
    expect(death['reason']).toBe('rejected');
    expect(death['queue']).toBe(queue);
    expect(ran).toEqual([]);
    expect(worker.processed).toBe(0);
    expect(worker.counters.invalid).toBe(1);
    expect(invalid).toHaveLength(1);
    expect(invalid[0]).toBeInstanceOf(DecodeError);
  });
});
