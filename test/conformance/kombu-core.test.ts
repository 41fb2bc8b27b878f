/**
 * The kombu core on every transport: declarations recorded as `{ method, params }` and
 * replayed exactly after a cut (through a third transport registered like any other, which
 * records what kombu sends), errors nobody can receive going to an 'error' listener or to
 * the connection's logger, and a Message knowing whether the channel it came on is open.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CallbackError, ChannelError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Exchange } from '../../src/kombu/exchange.js';
import { ManyQueueConsumer } from '../../src/kombu/many-queue-consumer.js';
import type { ConnectionOptions } from '../../src/kombu/connection.js';
import type { Message } from '../../src/kombu/message.js';
import type { Logger } from '../../src/logger.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { closeConnection } from '../fault/helpers.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { registerSpy, spyUrl } from './spy-transport.js';
import type { SpiedCall } from './spy-transport.js';
import { transports } from './transports.js';

const FAST = { intervalStart: 50, intervalStep: 50, intervalMax: 200 };

/** A logger that keeps what it is given: the proof that an error reached it, and how often. */
function spyLogger(): Logger & { readonly errors: Array<[string, ...unknown[]]> } {
  const errors: Array<[string, ...unknown[]]> = [];
  return {
    errors,
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (message, ...meta) => void errors.push([message, ...meta]),
  };
}

describe.each(transports)('kombu core on $name', (t) => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  /** A connection of its own (named, so that a cut hits only it), closed after the test. */
  function connect(url: string, options: ConnectionOptions = {}): Connection {
    const conn = new Connection(url, {
      heartbeat: 0,
      connectionName: uid('kcore'),
      retryPolicy: FAST,
      ...options,
    });
    cleanups.push(() => conn.close());
    return conn;
  }

  /** The URL of this transport, on a memory broker of the test's own for memory://. */
  function ownUrl(): { url: string; host: string } {
    const host = uid('kcore-host');
    return { url: t.kind === 'memory' ? `memory://${host}/` : t.url, host };
  }

  /** Deletes the test's queues and exchanges after it, on a connection of its own. */
  function removeAfter(kind: 'queue' | 'exchange', name: string): void {
    cleanups.push(async () => {
      if (t.kind === 'memory') return;
      const admin = new Connection(t.url, { heartbeat: 0 });
      try {
        const ch = await admin.channel();
        if (kind === 'queue') await ch.deleteQueue({ queue: name });
        else await ch.deleteExchange({ exchange: name });
      } finally {
        await admin.close();
      }
    });
  }

  /** Drops the connection from the broker side, as a network cut or a broker restart would. */
  async function cut(conn: Connection, host: string, forget = false): Promise<void> {
    await conn.connect();
    const revived = new Promise<void>((resolve) => conn.once('revive', resolve));
    if (t.kind === 'memory') {
      // A reset also forgets every entity, as a restart forgets transient ones.
      if (forget) MemoryBroker.get(host).reset();
      else MemoryBroker.get(host).disconnectAll('kombu-core cut');
    } else {
      expect(await closeConnection(conn.options.connectionName ?? '')).toBe(1);
    }
    await revived;
  }

  it('replays exactly the recorded { method, params } after a cut, by kind; unbinds and deletes forget theirs', async () => {
    const spy = registerSpy(t.kind);
    cleanups.push(() => spy.unregister());
    const { url, host } = ownUrl();
    const logger = spyLogger();
    const conn = connect(t.kind === 'memory' ? `${spy.scheme}://${host}/` : spyUrl(spy, url), { logger });
    const [a, b, c, q] = [uid('kc-a'), uid('kc-b'), uid('kc-c'), uid('kc-q')];
    for (const x of [a, b, c]) removeAfter('exchange', x);
    removeAfter('queue', q);
    const exchangeA = { exchange: a, type: 'topic', durable: false, autoDelete: false };
    const exchangeB = { exchange: b, type: 'fanout', durable: false, autoDelete: false };
    const bindBA = { destination: b, source: a, routingKey: 'k.*' };
    const queue = { queue: q, durable: false, autoDelete: false };
    const bindQB = { queue: q, exchange: b, routingKey: '' };

    const ch = await conn.channel();
    // Declared out of kind order: the queue first, bindings interleaved.
    await ch.declareQueue(queue);
    await ch.declareExchange(exchangeA);
    await ch.declareExchange(exchangeB);
    await ch.bindQueue(bindQB);
    await ch.bindExchange(bindBA);
    // Undone again, so never replayed; a passive declare is not recorded at all.
    await ch.bindQueue({ queue: q, exchange: a, routingKey: 'direct' });
    await ch.unbindQueue({ queue: q, exchange: a, routingKey: 'direct' });
    await ch.bindExchange({ destination: b, source: a, routingKey: 'gone' });
    await ch.unbindExchange({ destination: b, source: a, routingKey: 'gone' });
    await ch.declareExchange({ exchange: c, type: 'direct', durable: false, autoDelete: false });
    await ch.deleteExchange({ exchange: c });
    await ch.declareQueue({ queue: q, passive: true });
    const got: string[] = [];
    await ch.consume({ queue: q }, (m) => {
      got.push(m.body.toString());
      m.ack();
    });
    expect(ch.recoveryRecordSize).toBe(5);

    const before = spy.calls.length;
    await cut(conn, host, true);
    const replayed = spy.calls.slice(before).map(({ method, params }: SpiedCall) => ({ method, params }));
    expect(replayed).toEqual([
      // The consumed queue is checked first (passive, on a channel of its own): had it gone
      // with the connection, it would be reported as 'queueLost' before being declared again.
      { method: 'declareQueue', params: { queue: q, passive: true } },
      { method: 'declareExchange', params: exchangeA },
      { method: 'declareExchange', params: exchangeB },
      { method: 'bindExchange', params: bindBA },
      { method: 'declareQueue', params: queue },
      { method: 'bindQueue', params: bindQB },
      { method: 'consume', params: expect.objectContaining({ queue: q }) },
    ]);
    expect(spy.connections).toBe(2);
    // Routing works through the replayed exchange-to-exchange binding (on memory:// the
    // reset had forgotten every entity, so this is the replay's doing).
    await ch.publish({ exchange: a, routingKey: 'k.x', body: Buffer.from('after the cut') });
    await waitUntil(() => got.includes('after the cut'), {
      what: 'a delivery through the replayed bindings',
    });
    expect(logger.errors).toEqual([]);
  });

  describe('errors nobody can receive', () => {
    async function throwingConsumer(
      conn: Connection,
    ): Promise<{ publish: (body: string) => Promise<void>; got: string[] }> {
      const q = uid('kc-throw');
      removeAfter('queue', q);
      const ch = await conn.channel();
      await ch.declareQueue({ queue: q, durable: false, autoDelete: false });
      const got: string[] = [];
      await ch.consume({ queue: q }, (m: Message) => {
        const body = m.body.toString();
        m.ack();
        if (body === 'boom') throw new TypeError('callback bug');
        got.push(body);
      });
      return { publish: (body) => ch.publish({ exchange: '', routingKey: q, body: Buffer.from(body) }), got };
    }

    it("a consumer callback that throws reaches an 'error' listener as a CallbackError, and not the logger", async () => {
      const logger = spyLogger();
      const conn = connect(ownUrl().url, { logger });
      const errors: Error[] = [];
      conn.on('error', (err) => errors.push(err));
      const { publish, got } = await throwingConsumer(conn);
      await publish('boom');
      await publish('fine');
      await waitUntil(() => got.length === 1, { what: 'the delivery after the throw' });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(CallbackError);
      expect(errors[0]).toMatchObject({ code: 'CALLBACK_FAILED', cause: expect.any(TypeError) });
      expect(logger.errors).toEqual([]);
    });

    it('without a listener it goes to the logger, once, and to a pending drainEvents', async () => {
      const logger = spyLogger();
      const conn = connect(ownUrl().url, { logger });
      const { publish, got } = await throwingConsumer(conn);
      const drained = conn.drainEvents({ timeout: 10_000 });
      await publish('boom');
      await expect(drained).rejects.toBeInstanceOf(CallbackError);
      await publish('fine');
      await waitUntil(() => got.length === 1, { what: 'the delivery after the throw' });
      expect(logger.errors).toHaveLength(1);
      const [message, error] = logger.errors[0] ?? [];
      expect(message).toMatch(/callback bug/);
      expect(error).toBeInstanceOf(CallbackError);
      expect(error).toMatchObject({ cause: expect.objectContaining({ message: 'callback bug' }) });
    });

    it('a consumer that cannot be restarted after a cut is reported as a typed ChannelError and announced by cancel', async () => {
      const logger = spyLogger();
      const { url, host } = ownUrl();
      const conn = connect(url, { logger });
      const ch = await conn.channel();
      // Exclusive: the broker deletes it with the connection; unrecorded: nothing redeclares it.
      const ok = await ch.declareQueue({ queue: '', exclusive: true }, { recover: false });
      const tag = await ch.consume({ queue: ok?.queue ?? '' }, (m) => m.ack());
      const cancelled: string[] = [];
      ch.on('cancel', (t) => cancelled.push(t));
      await cut(conn, host);
      await waitUntil(() => logger.errors.length > 0, { what: 'the dropped consumer reported' });
      expect(logger.errors).toHaveLength(1);
      const error = logger.errors[0]?.[1];
      expect(error).toBeInstanceOf(ChannelError);
      expect(error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(tag) });
      expect(cancelled).toEqual([tag]);
      expect(ch.consumerTags).toEqual([]);
    });
  });

  it('a Message knows whether the channel it came on is still open, and says when it closes', async () => {
    const { url, host } = ownUrl();
    const conn = connect(url, { logger: spyLogger() });
    const q = uid('kc-held');
    removeAfter('queue', q);
    const ch = await conn.channel();
    await ch.declareQueue({ queue: q, durable: false, autoDelete: false });
    const held: Message[] = [];
    await ch.consume({ queue: q }, (m) => void held.push(m));
    await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('eta task') });
    await waitUntil(() => held.length === 1, { what: 'one delivery' });
    const first = held[0];
    if (first === undefined) throw new Error('no message');
    expect(first.channelOpen).toBe(true);
    let closes = 0;
    first.onChannelClose(() => (closes += 1));
    const off = first.onChannelClose(() => (closes += 100));
    off();
    await cut(conn, host);
    expect(closes).toBe(1);
    expect(first.channelOpen).toBe(false);
    // The broker requeued it with the channel; settling this copy is a no-op.
    expect(first.ack()).toBe(false);
    await waitUntil(() => held.length === 2, { what: 'the redelivery to the restarted consumer' });
    expect(held[1]?.redelivered).toBe(true);
    expect(held[1]?.channelOpen).toBe(true);
    held[1]?.ack();
  });

  describe('ManyQueueConsumer', () => {
    /** `n` queues bound to a fresh exchange by the consumer, and a publisher to them. */
    async function setUp(n: number, spyOn?: ReturnType<typeof registerSpy>) {
      const { url, host } = ownUrl();
      const connUrl =
        spyOn === undefined ? url : t.kind === 'memory' ? `${spyOn.scheme}://${host}/` : spyUrl(spyOn, url);
      const logger = spyLogger();
      const conn = connect(connUrl, { logger });
      const x = uid('kc-many-x');
      removeAfter('exchange', x);
      const queues = Array.from({ length: n }, (_, i) => `${x}.${i}`);
      for (const q of queues) removeAfter('queue', q);
      const pub = await conn.channel();
      const publishAll = async (names: readonly string[], body: string): Promise<void> => {
        for (const q of names) await pub.publish({ exchange: x, routingKey: q, body: Buffer.from(body) });
      };
      const depth = async (q: string): Promise<number> =>
        (await pub.declareQueue({ queue: q, passive: true }))?.messageCount ?? -1;
      return { conn, host, logger, x, queues, publishAll, depth };
    }

    it('spreads the queues over lanes, binds them, acks in bulk and ends by closing its lanes', async () => {
      const spy = registerSpy(t.kind);
      cleanups.push(() => spy.unregister());
      const { conn, logger, x, queues, publishAll, depth } = await setUp(150, spy);
      const got = new Set<string>();
      const many: ManyQueueConsumer = new ManyQueueConsumer(conn, {
        queue: { durable: false, autoDelete: false },
        bindTo: new Exchange(x, { durable: false }),
        onMessage: (m) => {
          got.add(m.deliveryInfo.routingKey);
          many.ack(m);
        },
        ackInterval: 0,
      });
      cleanups.push(() => many.close());
      await many.consume(queues);
      // 150 queues at 64 per lane: three channels consume.
      const lanes = new Set(spy.calls.filter((c) => c.method === 'consume').map((c) => c.channel));
      expect(lanes.size).toBe(3);
      await publishAll(queues, 'result');
      await waitUntil(() => got.size === queues.length, { what: 'a message from every queue' });
      await many.close({ flushAcks: true });
      for (const q of [queues[0], queues[149]]) expect(await depth(q ?? '')).toBe(0);
      expect(logger.errors).toEqual([]);
    });

    it('without flushing, closing hands every message back; after a cut only wanted queues are set up again', async () => {
      const { conn, host, logger, queues, publishAll, depth, x } = await setUp(40);
      // All wanted at first; after the cut only the first half (the others' results came).
      const wanted = new Set(queues);
      const got: string[] = [];
      const many = new ManyQueueConsumer(conn, {
        queue: { durable: false, autoDelete: false },
        bindTo: new Exchange(x, { durable: false }),
        onMessage: (m) => void got.push(m.deliveryInfo.routingKey),
        wanted: (q) => wanted.has(q),
      });
      cleanups.push(() => many.close());
      await many.consume(queues);
      for (const q of queues.slice(20)) wanted.delete(q);
      await cut(conn, host);
      // The unwanted first: were they consumed again, their messages would come first.
      await publishAll([...queues.slice(20), ...queues.slice(0, 20)], 'after the cut');
      await waitUntil(() => got.length === wanted.size, { what: 'a message from every wanted queue' });
      expect(new Set(got)).toEqual(wanted);
      await many.close({ flushAcks: false });
      expect(await depth(queues[0] ?? '')).toBe(1);
      expect(await depth(queues[39] ?? '')).toBe(1);
      expect(logger.errors).toEqual([]);
    });
  });
});
