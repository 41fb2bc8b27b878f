/**
 * Lost queues on memory://: a consumed queue deleted under its consumer, or gone with a lost
 * connection, is reported ('queueLost'), declared again and consumed again; the result
 * backends turn it into what their waits say. The same on a RabbitMQ cluster losing a node
 * is in test/cluster/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { QueueLostError, TimeoutError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Consumer } from '../../src/kombu/consumer.js';
import { Producer } from '../../src/kombu/producer.js';
import { Queue } from '../../src/kombu/queue.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';

const cleanups = cleanupStack();
afterEach(() => cleanups.run());

/** A connection to the embedded broker `host`, closed after the test. */
function open(host: string): Connection {
  const c = new Connection(`memory://${host}`, { retryPolicy: { intervalStart: 10, intervalStep: 10 } });
  cleanups.push(() => c.close());
  return c;
}

/** Records 'queueLost' events of a connection. */
function lostOn(conn: Connection): Array<[string, QueueLostError]> {
  const lost: Array<[string, QueueLostError]> = [];
  conn.on('queueLost', (queue, err) => lost.push([queue, err]));
  return lost;
}

describe('queueLost (kombu)', () => {
  it('a consumed queue deleted by someone else: reported, declared again, and the same consumer gets what follows', async () => {
    const host = uid('ql');
    const conn = open(host);
    const other = open(host);
    const name = uid('q');
    const got: unknown[] = [];
    const consumer = new Consumer(conn, {
      queues: [new Queue(name, { durable: false })],
      callbacks: [(body, m) => (got.push(body), m.ack())],
    });
    await consumer.consume();
    const lost = lostOn(conn);
    await new Queue(name).bind(other).delete();
    await waitUntil(() => lost.length === 1, { what: 'queueLost' });
    const [queue, err] = lost[0]!;
    expect(queue).toBe(name);
    expect(err).toBeInstanceOf(QueueLostError);
    expect(err.code).toBe('QUEUE_LOST');
    expect(err.message).toMatch(/cancelled its consumer/);
    const broker = MemoryBroker.get(host);
    await waitUntil(() => broker.queueInfo('/', name)?.consumerCount === 1, { what: 'the consumer back' });
    await new Producer(other).publish('after', { routingKey: name });
    await waitUntil(() => got.length === 1, { what: 'the delivery after the loss' });
    expect(got).toEqual(['after']);
    expect(consumer.channel.consumerTags).toHaveLength(1);
  });

  it('a queue its own channel deletes is not reported or brought back', async () => {
    const host = uid('ql');
    const conn = open(host);
    const name = uid('q');
    const consumer = new Consumer(conn, { queues: [new Queue(name, { durable: false })], callbacks: [] });
    await consumer.consume();
    const lost = lostOn(conn);
    const cancelled = new Promise((resolve) => consumer.channel.once('cancel', resolve));
    await consumer.queues[0]!.delete();
    await cancelled;
    expect(lost).toEqual([]);
    expect(MemoryBroker.get(host).queueInfo('/', name)).toBeUndefined();
    expect(consumer.channel.consumerTags).toEqual([]);
  });

  it('after a reconnect: an auto-delete queue gone with the connection is reported before it is declared again; a kept one is not', async () => {
    const host = uid('ql');
    const conn = open(host);
    const gone = uid('gone');
    const kept = uid('kept');
    const got: unknown[] = [];
    const consumer = new Consumer(conn, {
      queues: [new Queue(gone, { durable: false, autoDelete: true }), new Queue(kept, { durable: false })],
      callbacks: [(body, m) => (got.push(body), m.ack())],
    });
    await consumer.consume();
    const broker = MemoryBroker.get(host);
    const lost = lostOn(conn);
    let existedWhenReported: boolean | undefined;
    conn.on('queueLost', () => (existedWhenReported = broker.queueInfo('/', gone) !== undefined));
    broker.disconnectAll('connection lost');
    await waitUntil(() => lost.length === 1 && broker.queueInfo('/', gone)?.consumerCount === 1, {
      what: 'the loss reported and the queue consumed again',
    });
    expect(lost.map(([q]) => q)).toEqual([gone]);
    expect(lost[0]![1].message).toMatch(/gone after reconnecting to memory:\/\//);
    expect(existedWhenReported).toBe(false);
    await new Producer(conn).publish('again', { routingKey: gone });
    await waitUntil(() => got.length === 1, { what: 'the delivery after the reconnect' });
  });
});

describe('result backends on a lost queue', () => {
  it('rpc://: a pending wait fails at once with QueueLostError when the reply queue goes; a reply sent after it still arrives', async () => {
    const host = uid('ql');
    const client = new RPCBackend({ connection: open(host) });
    const worker = new RPCBackend({ connection: open(host) });
    cleanups.push(() => client.close());
    cleanups.push(() => worker.close());
    await client.ensureReplyQueue();
    const id = newTaskId();
    // 60 s, past the test's own timeout: only a failure at the loss ends it in time.
    const waiting = client.waitFor(id, { timeout: 60_000 }).catch((e: unknown) => e);
    // The client's connection dies: its auto-delete reply queue goes with it.
    MemoryBroker.get(host).disconnectAll('node lost');
    const err = await waiting;
    expect(err).toBeInstanceOf(QueueLostError);
    expect((err as QueueLostError).queue).toBe(client.oid);
    expect((err as QueueLostError).message).toMatch(/may be lost/);
    await worker.storeResult(id, 'after', 'SUCCESS', {
      request: { reply_to: client.oid, correlation_id: id },
    });
    expect((await client.waitFor(id, { timeout: 10_000 })).result).toBe('after');
  });

  it('amqp://: a wait goes on across a lost task queue (a store after the loss arrives); at its deadline it names the loss', async () => {
    const host = uid('ql');
    const exchange = uid('ex');
    const reader = new AMQPBackend({ connection: open(host), exchange });
    const writer = new AMQPBackend({ connection: open(host), exchange });
    cleanups.push(() => reader.close());
    cleanups.push(() => writer.close());
    const broker = MemoryBroker.get(host);
    const [kept, missed] = [newTaskId(), newTaskId()];
    const waitKept = reader.waitFor(kept, { timeout: 30_000 });
    const waitMissed = reader.waitFor(missed, { timeout: 1500 }).catch((e: unknown) => e);
    await waitUntil(() => broker.queueInfo('/', reader.rkey(missed))?.consumerCount === 1, {
      what: 'waits consuming',
    });
    const lost = lostOn(reader.connection);
    broker.disconnectAll('node lost');
    await waitUntil(() => lost.length === 2, { what: 'both task queues reported lost' });
    await writer.storeResult(kept, 'after', 'SUCCESS');
    expect((await waitKept).result).toBe('after');
    const err = await waitMissed;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).cause).toBeInstanceOf(QueueLostError);
    expect((err as TimeoutError).message).toMatch(/was lost/);
  });
});
