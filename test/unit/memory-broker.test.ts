/**
 * Embedded-broker behaviour that RabbitMQ cannot be made to show on demand: forced
 * disconnects, inspection helpers, flow control, broker-side cancels, isolation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, ConnectionError } from '../../src/errors.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { MemoryTransport } from '../../src/transport/memory/memory-transport.js';
import type { BrokerAddress, Delivery, TransportConnection } from '../../src/transport/types.js';
import { uid, waitUntil } from '../fixture.js';

const transport = new MemoryTransport();
const brokers: MemoryBroker[] = [];

function address(hostname: string, vhost = '/'): BrokerAddress {
  return { protocol: 'memory', hostname, port: 0, username: 'guest', password: 'guest', vhost, query: {} };
}

/** A broker of its own for each test, so tests cannot see each other. */
function freshBroker(): { broker: MemoryBroker; connect: (vhost?: string) => Promise<TransportConnection> } {
  const name = uid('unit');
  const broker = MemoryBroker.get(name);
  brokers.push(broker);
  return { broker, connect: (vhost = '/') => transport.connect(address(name, vhost)) };
}

afterEach(() => {
  for (const b of brokers.splice(0)) b.reset();
});

describe('MemoryBroker', () => {
  it('is one broker per hostname, and memory:// is localhost', () => {
    expect(MemoryBroker.get('localhost')).toBe(MemoryBroker.get());
    const { broker } = freshBroker();
    expect(broker).not.toBe(MemoryBroker.get());
  });

  it('keeps vhosts apart', async () => {
    const { broker, connect } = freshBroker();
    const a = await (await connect('/')).createChannel();
    const b = await (await connect('other')).createChannel();
    await a.declareQueue({ queue: 'same', durable: true });
    await b.declareQueue({ queue: 'same', durable: false });
    await a.publish({ exchange: '', routingKey: 'same', body: Buffer.from('a') });
    expect(broker.queueInfo('/', 'same')).toMatchObject({ messageCount: 1, durable: true });
    expect(broker.queueInfo('other', 'same')).toMatchObject({ messageCount: 0, durable: false });
    expect(broker.exchangeInfo('/', 'amq.topic')).toMatchObject({ type: 'topic', durable: true });
  });

  it('disconnectAll closes every connection with a recoverable CONNECTION_FORCED', async () => {
    const { broker, connect } = freshBroker();
    const conn = await connect();
    const ch = await conn.createChannel();
    await ch.declareQueue({ queue: 'work', durable: true });
    await ch.declareQueue({ queue: 'excl', exclusive: true });
    await ch.declareQueue({ queue: 'auto', autoDelete: true });
    await ch.consume({ queue: 'auto', noAck: true }, () => {});
    for (const s of ['1', '2']) await ch.publish({ exchange: '', routingKey: 'work', body: Buffer.from(s) });
    const got: Delivery[] = [];
    await ch.consume({ queue: 'work' }, (d) => got.push(d));
    await waitUntil(() => got.length === 2);

    const connClosed = new Promise<Error | undefined>((resolve) => conn.once('close', resolve));
    const chClosed = new Promise<Error | undefined>((resolve) => ch.once('close', resolve));
    broker.disconnectAll('test outage');
    const connError = await connClosed;
    const chError = await chClosed;
    expect(connError).toBeInstanceOf(ConnectionError);
    expect(connError).toMatchObject({ code: 'CONNECTION_FORCED', recoverable: true });
    expect(connError?.message).toContain('test outage');
    expect(chError).toBe(connError);
    expect(conn.closed && ch.closed).toBe(true);
    expect(broker.connectionCount).toBe(0);
    await expect(ch.get({ queue: 'work' })).rejects.toBeInstanceOf(ConnectionError);
    await expect(conn.createChannel()).rejects.toBeInstanceOf(ConnectionError);

    // Unacked messages are back, redelivered; exclusive and auto-delete queues are gone.
    expect(broker.queueInfo('/', 'excl')).toBeUndefined();
    expect(broker.queueInfo('/', 'auto')).toBeUndefined();
    expect(broker.queueInfo('/', 'work')).toMatchObject({ messageCount: 2, consumerCount: 0 });
    const ch2 = await (await connect()).createChannel();
    const d = await ch2.get({ queue: 'work', noAck: true });
    expect(d?.body.toString()).toBe('1');
    expect(d?.fields.redelivered).toBe(true);
  });

  it('reset forgets everything', async () => {
    const { broker, connect } = freshBroker();
    const ch = await (await connect()).createChannel();
    ch.on('close', () => {});
    await ch.declareQueue({ queue: 'q' });
    broker.reset();
    expect(broker.queueInfo('/', 'q')).toBeUndefined();
    expect(broker.connectionCount).toBe(0);
  });

  it('deleting a queue cancels its consumers with a cancel event', async () => {
    const { connect } = freshBroker();
    const conn = await connect();
    const ch = await conn.createChannel();
    await ch.declareQueue({ queue: 'doomed' });
    const tag = await ch.consume({ queue: 'doomed' }, () => {});
    const cancelled = new Promise<string>((resolve) => ch.once('cancel', resolve));
    const other = await conn.createChannel();
    await other.deleteQueue({ queue: 'doomed' });
    expect(await cancelled).toBe(tag);
    expect(ch.closed).toBe(false);
  });

  it('flow(false) pauses delivery to the channel until flow(true)', async () => {
    const { broker, connect } = freshBroker();
    const ch = await (await connect()).createChannel();
    await ch.declareQueue({ queue: 'q' });
    const got: Delivery[] = [];
    await ch.consume({ queue: 'q', noAck: true }, (d) => got.push(d));
    await ch.flow({ active: false });
    await ch.publish({ exchange: '', routingKey: 'q', body: Buffer.from('held') });
    // The message stays ready while the channel is paused.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(got).toHaveLength(0);
    expect(broker.queueInfo('/', 'q')?.messageCount).toBe(1);
    await ch.flow({ active: true });
    await waitUntil(() => got.length === 1);
  });

  it('delivers asynchronously, never inside publish', async () => {
    const { connect } = freshBroker();
    const ch = await (await connect()).createChannel();
    await ch.declareQueue({ queue: 'q' });
    const got: Delivery[] = [];
    await ch.consume({ queue: 'q', noAck: true }, (d) => got.push(d));
    void ch.publish({ exchange: '', routingKey: 'q', body: Buffer.from('x') });
    expect(got).toHaveLength(0);
    await waitUntil(() => got.length === 1);
  });

  it('a throwing consumer callback closes its channel and requeues, without an uncaught error', async () => {
    const { broker, connect } = freshBroker();
    const ch = await (await connect()).createChannel();
    await ch.declareQueue({ queue: 'q' });
    await ch.consume({ queue: 'q' }, () => {
      throw new Error('boom');
    });
    const closed = new Promise<Error | undefined>((resolve) => ch.once('close', resolve));
    await ch.publish({ exchange: '', routingKey: 'q', body: Buffer.from('x') });
    const err = await closed;
    expect(err).toBeInstanceOf(ChannelError);
    expect(err?.message).toContain('boom');
    expect(broker.queueInfo('/', 'q')).toMatchObject({ messageCount: 1, consumerCount: 0 });
  });

  it('expiry timers do not keep the process alive', async () => {
    const { connect } = freshBroker();
    const ch = await (await connect()).createChannel();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    for (let i = 0; i < 10; i++)
      await ch.declareQueue({ queue: `exp-${i}`, arguments: { 'x-expires': 3_600_000 } });
    expect(timers()).toBe(before);
  });

  it('moves a large backlog in order without loss (consumer with prefetch and acks)', async () => {
    const { broker, connect } = freshBroker();
    const conn = await connect();
    const pub = await conn.createChannel();
    const sub = await conn.createChannel();
    await pub.declareQueue({ queue: 'bulk' });
    const n = 50_000;
    for (let i = 0; i < n; i++)
      void pub.publish({ exchange: '', routingKey: 'bulk', body: Buffer.from(String(i)) });
    await sub.qos({ prefetchSize: 0, prefetchCount: 100 });
    let next = 0;
    let outOfOrder = 0;
    await sub.consume({ queue: 'bulk' }, (d) => {
      if (d.body.toString() !== String(next)) outOfOrder++;
      next++;
      sub.ack({ deliveryTag: d.fields.deliveryTag });
    });
    await waitUntil(() => next === n, { timeout: 20_000 });
    expect(outOfOrder).toBe(0);
    expect(broker.queueInfo('/', 'bulk')?.messageCount).toBe(0);
  });

  it('an unknown exchange type closes the connection with 503 COMMAND_INVALID', async () => {
    const { connect } = freshBroker();
    const conn = await connect();
    const closed = new Promise<Error | undefined>((resolve) => conn.once('close', resolve));
    const ch = await conn.createChannel();
    ch.on('close', () => {});
    await expect(ch.declareExchange({ exchange: 'x', type: 'no-such-type' })).rejects.toMatchObject({
      code: 'COMMAND_INVALID',
    });
    expect(await closed).toBeInstanceOf(ConnectionError);
  });
});
