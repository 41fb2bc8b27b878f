/**
 * kombu recovery details on every transport: throwing callbacks stay inside kombu, settling
 * on a closing channel returns false, store channels record nothing, consumed queues are
 * never evicted from the recovery record, replay order, server-named queues after a loss.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CallbackError, ConnectionError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Consumer } from '../../src/kombu/consumer.js';
import { Exchange } from '../../src/kombu/exchange.js';
import type { Message } from '../../src/kombu/message.js';
import { Producer } from '../../src/kombu/producer.js';
import { NoCacheQueue, Queue } from '../../src/kombu/queue.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import type { RecoveringChannel } from '../../src/kombu/channel-types.js';
import { closeConnection } from '../fault/helpers.js';
import { uid, waitUntil } from '../fixture.js';
import { transports } from './transports.js';

const FAST = { intervalStart: 50, intervalStep: 50, intervalMax: 200 };

/** A non-durable exchange declaration (the tests' entities are all transient). */
const transient = (name: string): Exchange => new Exchange(name, { durable: false });

describe.each(transports)('kombu recovery on $name', (t) => {
  const opened: Connection[] = [];
  const queues: string[] = [];
  const exchanges: string[] = [];

  function connect(extra: ConstructorParameters<typeof Connection>[1] = {}): Connection {
    const c = new Connection(t.url, {
      heartbeat: 0,
      connectionName: uid('kr-conn'),
      retryPolicy: FAST,
      ...extra,
    });
    opened.push(c);
    return c;
  }

  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
    const c = new Connection(t.url, { heartbeat: 0 });
    try {
      for (const q of queues.splice(0)) await new Queue(q).bind(c).delete();
      for (const e of exchanges.splice(0)) await new Exchange(e).bind(c).delete();
    } finally {
      await c.close();
    }
  });

  /** Drops the connection from the broker side. */
  async function drop(conn: Connection): Promise<void> {
    await conn.connect();
    if (t.kind === 'memory') MemoryBroker.get('localhost').disconnectAll('test drop');
    else expect(await closeConnection(conn.options.connectionName ?? '')).toBe(1);
  }

  it('a Queue.consume callback that throws goes to the error path; delivery goes on', async () => {
    const conn = connect();
    const errors: Error[] = [];
    conn.on('error', (e) => errors.push(e));
    const name = uid('throw');
    queues.push(name);
    const q = new Queue(name, { durable: false }).bind(conn);
    await q.declare();
    const got: unknown[] = [];
    await q.consume((m) => {
      const body = m.payload;
      if (body === 'boom') throw new Error('callback failed');
      got.push(body);
      m.ack();
    });
    const p = new Producer(conn, { routingKey: name });
    await p.publish('boom');
    await p.publish('fine');
    await waitUntil(() => got.length === 1 && errors.length === 1, {
      what: 'the error and the next delivery',
      timeout: 20_000,
    });
    expect(errors[0]).toBeInstanceOf(CallbackError);
    expect(errors[0]?.cause).toMatchObject({ message: 'callback failed' });
    expect(got).toEqual(['fine']);
  });

  it('a Consumer callback that throws is reported on the Consumer, not thrown into the transport', async () => {
    const conn = connect();
    const name = uid('cthrow');
    queues.push(name);
    const errors: Error[] = [];
    const got: unknown[] = [];
    const c = new Consumer(conn, {
      queues: [new Queue(name, { durable: false })],
      callbacks: [
        (body, m) => {
          if (body === 1) throw new TypeError('bad callback');
          got.push(body);
          m.ack();
        },
      ],
    });
    c.on('error', (e) => errors.push(e));
    await c.consume();
    const p = new Producer(conn, { routingKey: name });
    await p.publish(1);
    await p.publish(2);
    await waitUntil(() => got.length === 1 && errors.length === 1, {
      what: 'error and delivery',
      timeout: 20_000,
    });
    expect(errors[0]).toBeInstanceOf(CallbackError);
    expect(errors[0]?.cause).toBeInstanceOf(TypeError);
    await c.close();
  });

  it('ack and reject on a closing channel return false instead of throwing', async () => {
    const conn = connect();
    const name = uid('closing');
    queues.push(name);
    const q = new Queue(name, { durable: false }).bind(conn);
    await q.declare();
    const p = new Producer(conn, { routingKey: name });
    await p.publish('a');
    await p.publish('b');
    const ch = await conn.channel();
    const bound = q.bind(ch);
    const got: Message[] = [];
    await bound.consume((m) => got.push(m));
    await waitUntil(() => got.length === 2, { what: 'two deliveries', timeout: 20_000 });
    const closing = ch.close();
    const [a, b] = got as [Message, Message];
    expect(a.ack()).toBe(false);
    expect(b.reject({ requeue: true })).toBe(false);
    await closing;
    // Both were requeued by the broker when the channel closed.
    const again = await q.get({ noAck: true, timeout: 5000 });
    expect(again?.payload).toBe('a');
  });

  it('a channel with recoverDeclarations false records nothing; NoCacheQueue declares still reach the broker', async () => {
    const conn = connect();
    const ex = uid('store-ex');
    exchanges.push(ex);
    const store = await conn.channel({ confirm: true, recoverDeclarations: false });
    const producer = new Producer(store, { exchange: new Exchange(ex, { durable: false }) });
    for (let i = 0; i < 50; i++) {
      const name = uid(`store-${i}`);
      queues.push(name);
      const q = new NoCacheQueue(name, {
        exchange: transient(ex),
        routingKey: name,
        durable: false,
        expires: 60_000,
      });
      await producer.publish({ i }, { routingKey: name, declare: [q], declareNowait: true });
    }
    expect(store.recoveryRecordSize).toBe(0);
    const last = queues.at(-1) ?? '';
    const m = await new Queue(last).bind(conn).get({ noAck: true });
    expect(m?.payload).toEqual({ i: 49 });
    // The per-call option does the same on a recording channel.
    const rec = await conn.channel();
    const name = uid('percall');
    queues.push(name);
    await new Queue(name, { durable: false }).bind(rec).declare({ recover: false });
    expect(rec.recoveryRecordSize).toBe(0);
    await new Queue(name, { durable: false }).bind(rec).declare();
    expect(rec.recoveryRecordSize).toBe(1);
  });

  it('consumed queues are never evicted by the recovery limit: every consumer resumes after a loss', async () => {
    const conn = connect({ recoveryLimit: 5 });
    const ex = uid('pin-ex');
    exchanges.push(ex);
    const names = Array.from({ length: 20 }, (_, i) => uid(`pin-${i}`));
    const got = new Set<unknown>();
    const c = new Consumer(conn, {
      // auto-delete: after the loss only a redeclaration brings them back.
      queues: names.map(
        (n) => new Queue(n, { exchange: transient(ex), routingKey: n, durable: false, autoDelete: true }),
      ),
      callbacks: [(b, m) => (got.add(b), m.ack())],
    });
    queues.push(...names);
    await c.consume();
    // Unrelated declarations afterwards push the record over its limit.
    for (let i = 0; i < 10; i++) {
      const extra = uid(`extra-${i}`);
      queues.push(extra);
      await new Queue(extra, { durable: false }).bind(c.channel).declare();
    }
    let revived = false;
    conn.on('revive', () => (revived = true));
    await drop(conn);
    await waitUntil(() => revived, { what: 'revive', timeout: 20_000 });
    const p = new Producer(await conn.channel(), { exchange: new Exchange(ex, { durable: false }) });
    for (const n of names) await p.publish(n, { routingKey: n, retry: true, retryPolicy: FAST });
    await waitUntil(() => got.size === names.length, {
      what: `${names.length} deliveries after the loss`,
      timeout: 20_000,
    });
    expect([...got].sort()).toEqual([...names].sort());
  });

  it('an unrecorded consumer ends with its channel; a recovery hook brings it back, and a removed hook does not run', async () => {
    const conn = connect();
    const q = uid('hook-q');
    queues.push(q);
    const ch = await conn.channel();
    const got: string[] = [];
    const handler = (m: Message): void => void got.push(m.body.toString());
    const spec = { durable: false, autoDelete: false };
    await ch.declareQueue({ queue: q, ...spec }, { recover: false });
    await ch.consume({ queue: q, noAck: true }, handler, { recover: false });
    // Nothing recorded: no consumer tag, no declaration.
    expect(ch.consumerTags).toEqual([]);
    expect(ch.recoveryRecordSize).toBe(0);
    const hooked: RecoveringChannel[] = [];
    const off = ch.addRecoveryHook(async (tch) => {
      hooked.push(tch);
      await tch.declareQueue({ queue: q, ...spec });
      await tch.consume({ queue: q, noAck: true }, handler);
    });
    const unused = ch.addRecoveryHook(() => Promise.reject(new Error('removed hook ran')));
    unused();
    let revived = false;
    conn.on('revive', () => (revived = true));
    await drop(conn);
    await waitUntil(() => revived && hooked.length === 1, { what: 'revive and hook', timeout: 20_000 });
    expect(hooked[0]?.closed).toBe(false);
    expect(ch.ready).toBe(true);
    const pub = await conn.channel();
    await pub.publish({ exchange: '', routingKey: q, body: Buffer.from('after') });
    await waitUntil(() => got.includes('after'), {
      what: 'delivery to the re-consumed queue',
      timeout: 20_000,
    });
    off();
    revived = false;
    await drop(conn);
    await waitUntil(() => revived, { what: 'second revive', timeout: 20_000 });
    expect(hooked).toHaveLength(1);
  });

  it('close() while the channel is being recovered closes the channel the recovery opened', async () => {
    const conn = connect();
    const errors: Error[] = [];
    conn.on('error', (e) => errors.push(e));
    const ch = await conn.channel();
    await ch.whenReady();
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reopened: RecoveringChannel | undefined;
    ch.addRecoveryHook(async (tch) => {
      reopened = tch;
      await gate; // holds the recovery open while the channel is closed
    });
    await drop(conn);
    await waitUntil(() => reopened !== undefined, { what: 'recovery under way', timeout: 20_000 });
    await ch.close();
    release();
    // The channel opened for the recovery must not outlive the closed kombu channel.
    await waitUntil(() => reopened?.closed === true, {
      what: 'the recovered transport channel closed',
      timeout: 5000,
    });
    expect(ch.ready).toBe(false);
    // A close the caller asked for is not an error of the connection.
    expect(errors).toEqual([]);
  });

  it('a bound queue deleted on purpose is not redeclared or rebound after a loss, and no error is reported', async () => {
    const conn = connect();
    const errors: Error[] = [];
    conn.on('error', (e) => errors.push(e));
    const ex = uid('del-ex');
    const q = uid('del-q');
    exchanges.push(ex);
    queues.push(q);
    const ch = await conn.channel();
    await ch.declareExchange({ exchange: ex, type: 'direct', durable: false, autoDelete: false });
    await ch.declareQueue({ queue: q, durable: false, autoDelete: false });
    await ch.bindQueue({ queue: q, exchange: ex, routingKey: 'rk' });
    await ch.deleteQueue({ queue: q });
    expect(ch.recoveryRecordSize).toBe(1); // the exchange only
    let revived = false;
    conn.on('revive', () => (revived = true));
    await drop(conn);
    await waitUntil(() => revived, { what: 'revive', timeout: 20_000 });
    // The channel still works, and the queue was not brought back.
    await ch.declareExchange({ exchange: ex, type: 'direct', durable: false, autoDelete: false });
    const probe = await conn.channel();
    await expect(probe.declareQueue({ queue: q, passive: true })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(errors).toEqual([]);
  });

  it('an unknown exchange type fails fast with a typed 503, is not replayed, and the connection recovers', async () => {
    const conn = connect();
    const errors: Error[] = [];
    conn.on('error', (e) => errors.push(e));
    let disconnects = 0;
    conn.on('disconnect', () => (disconnects += 1));
    let revives = 0;
    conn.on('revive', () => (revives += 1));
    const ex = uid('typo-ex');
    const good = uid('good-ex');
    exchanges.push(good);
    const ch = await conn.channel();
    await ch.declareExchange({ exchange: good, type: 'direct', durable: false, autoDelete: false });
    // Before: retried as recoverable forever (on memory:// without yielding to timers at all).
    const err = await ch.declareExchange({ exchange: ex, type: 'dierct', durable: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'COMMAND_INVALID', recoverable: false });
    expect(ch.recoveryRecordSize).toBe(1); // the good exchange only
    // RabbitMQ closed the connection for it; the good declaration comes back, the typo not.
    // 'revive' comes once the record has been replayed on the new connection: a replayed typo
    // would have closed that one too (a second disconnect, and no revive).
    await waitUntil(() => revives === 1, { what: 'revive', timeout: 20_000 });
    expect(disconnects).toBe(1);
    const q = uid('typo-q');
    queues.push(q);
    await ch.declareQueue({ queue: q, durable: false, autoDelete: false });
    await ch.bindQueue({ queue: q, exchange: good, routingKey: 'rk' });
    expect(disconnects).toBe(1);
  });

  it('a server-named queue is redeclared under a new name; its consumer and binding follow', async () => {
    const conn = connect();
    const ex = uid('anon-ex');
    exchanges.push(ex);
    const got: unknown[] = [];
    const c = new Consumer(conn, {
      queues: [new Queue('', { exchange: transient(ex), routingKey: 'k', durable: false, exclusive: true })],
      callbacks: [(b, m) => (got.push(b), m.ack())],
    });
    await c.consume();
    const first = c.queues[0]?.name ?? '';
    expect(first).not.toBe('');
    const renamed: Array<[string, string]> = [];
    c.channel.on('rename', (a, b) => renamed.push([a, b]));
    let revived = false;
    conn.on('revive', () => (revived = true));
    await drop(conn);
    await waitUntil(() => revived, { what: 'revive', timeout: 20_000 });
    expect(renamed.length).toBe(1);
    expect(renamed[0]?.[0]).toBe(first);
    const now = c.queues[0]?.name ?? '';
    expect(now).toBe(renamed[0]?.[1]);
    expect(c.consumingFrom(now)).toBe(true);
    // Through the exchange (the binding moved) and straight to the new name.
    const p = new Producer(await conn.channel(), { exchange: new Exchange(ex, { durable: false }) });
    await p.publish('via binding', { routingKey: 'k' });
    await p.publish('direct', { exchange: '', routingKey: now });
    await waitUntil(() => got.length === 2, { what: 'two deliveries on the renamed queue', timeout: 20_000 });
    expect(got).toEqual(['via binding', 'direct']);
  });

  it('without autoReconnect a drop rejects later operations with a typed ConnectionError', async () => {
    const conn = connect({ autoReconnect: false });
    const name = uid('noauto');
    queues.push(name);
    const q = new Queue(name, { durable: false }).bind(conn);
    await q.declare();
    let lost = false;
    conn.on('disconnect', () => (lost = true));
    await drop(conn);
    await waitUntil(() => lost, { what: 'disconnect', timeout: 20_000 });
    await expect(q.purge()).rejects.toBeInstanceOf(ConnectionError);
  });
});

describe('kombu recovery after a broker reset (memory only)', () => {
  it('replays exchanges before bindings even when the exchange was re-declared last', async () => {
    const conn = new Connection('memory://', { retryPolicy: FAST });
    try {
      const ex = uid('order-ex');
      const name = uid('order-q');
      const got: unknown[] = [];
      const c = new Consumer(conn, {
        queues: [new Queue(name, { exchange: transient(ex), routingKey: name, durable: false })],
        callbacks: [(b, m) => (got.push(b), m.ack())],
      });
      await c.consume();
      // Re-declaring moves the exchange behind the binding in the record.
      await new Exchange(ex, { durable: false }).bind(c.channel).declare();
      const errors: Error[] = [];
      conn.on('error', (e) => errors.push(e));
      let revived = false;
      conn.on('revive', () => (revived = true));
      // A reset forgets every entity, as a broker restart forgets transient ones.
      MemoryBroker.get('localhost').reset();
      await waitUntil(() => revived, { what: 'revive', timeout: 20_000 });
      await new Producer(await conn.channel(), { exchange: new Exchange(ex, { durable: false }) }).publish(
        'after reset',
        { routingKey: name },
      );
      await waitUntil(() => got.length === 1, { what: 'delivery after the reset', timeout: 20_000 });
      expect(errors).toEqual([]);
    } finally {
      await conn.close();
    }
  });
});
