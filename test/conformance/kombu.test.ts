/**
 * The kombu layer on every transport: the same bodies on memory:// and RabbitMQ.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CeleryAmqpError,
  ChannelError,
  ConnectionError,
  MessageStateError,
  NotBoundError,
  TimeoutError,
} from '../../src/errors.js';
import { Binding } from '../../src/kombu/binding.js';
import { Connection } from '../../src/kombu/connection.js';
import { Consumer } from '../../src/kombu/consumer.js';
import { Exchange } from '../../src/kombu/exchange.js';
import type { Message } from '../../src/kombu/message.js';
import { Producer } from '../../src/kombu/producer.js';
import { NoCacheQueue, Queue } from '../../src/kombu/queue.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { closeConnection } from '../fault/helpers.js';
import { uid, waitUntil } from '../fixture.js';
import { transports } from './transports.js';

describe.each(transports)('kombu on $name', (t) => {
  const opened: Connection[] = [];
  const cleanup: Array<() => Promise<unknown>> = [];
  const connName = (): string => uid('conn');

  function connect(extra: ConstructorParameters<typeof Connection>[1] = {}): Connection {
    const c = new Connection(t.url, { heartbeat: 0, connectionName: connName(), ...extra });
    opened.push(c);
    return c;
  }

  afterEach(async () => {
    for (const fn of cleanup.splice(0)) await fn().catch(() => undefined);
    for (const c of opened.splice(0)) await c.close();
  });

  function tempQueue(
    conn: Connection,
    name: string,
    opts: ConstructorParameters<typeof Queue>[1] = {},
  ): Queue {
    const q = new Queue(name, { durable: false, ...opts }).bind(conn);
    cleanup.push(async () => {
      const c = new Connection(t.url, { heartbeat: 0 });
      try {
        await new Queue(name).bind(c).delete();
      } finally {
        await c.close();
      }
    });
    return q;
  }
  function tempExchange(
    conn: Connection,
    name: string,
    opts: ConstructorParameters<typeof Exchange>[1] = {},
  ): Exchange {
    const e = new Exchange(name, { durable: false, ...opts }).bind(conn);
    cleanup.push(async () => {
      const c = new Connection(t.url, { heartbeat: 0 });
      try {
        await new Exchange(name).bind(c).delete();
      } finally {
        await c.close();
      }
    });
    return e;
  }

  describe('Exchange', () => {
    it('declares every type, routes, binds exchange to exchange, and deletes', async () => {
      const conn = connect();
      for (const type of ['direct', 'topic', 'fanout', 'headers'] as const) {
        const ex = tempExchange(conn, uid(type), { type });
        await ex.declare();
        const q = tempQueue(conn, uid(`q-${type}`));
        await q.declare();
        const args = type === 'headers' ? { 'x-match': 'all', kind: 'a' } : undefined;
        await q.bindTo(ex, {
          routingKey: type === 'topic' ? 'a.*' : 'a.b',
          ...(args ? { arguments: args } : {}),
        });
        await ex.publish(
          ex.Message('hi', { contentType: 'text/plain', contentEncoding: 'utf-8', headers: { kind: 'a' } }),
          {
            routingKey: 'a.b',
          },
        );
        const m = await getOne(q);
        expect(m.payload).toBe('hi');
        expect(m.properties.deliveryMode).toBe(2);
        m.ack();
      }
      // exchange-to-exchange
      const src = tempExchange(conn, uid('src'), { type: 'fanout' });
      const dst = tempExchange(conn, uid('dst'), { type: 'fanout' });
      await src.declare();
      await dst.declare();
      await dst.bindTo(src);
      const q = tempQueue(conn, uid('e2e'));
      await q.declare();
      await q.bindTo(dst);
      await src.publish(src.Message(Buffer.from('x'), { deliveryMode: 'transient' }));
      const m = await getOne(q);
      expect(m.body.toString()).toBe('x');
      expect(m.properties.deliveryMode).toBe(1);
      m.ack();
      await dst.unbindFrom(src);
      await src.publish(src.Message('y'));
      expect(await q.get()).toBeNull();
      await dst.delete();
      await expect(dst.declare({ passive: true })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('exposes attrs, canCacheDeclaration, binding(), and refuses unbound use', async () => {
      const ex = new Exchange('x', {
        type: 'topic',
        autoDelete: true,
        deliveryMode: 'transient',
        arguments: { a: 1 },
      });
      expect(ex.attrs).toEqual({
        name: 'x',
        type: 'topic',
        arguments: { a: 1 },
        durable: true,
        passive: false,
        autoDelete: true,
        deliveryMode: 1,
      });
      expect(ex.canCacheDeclaration).toBe(false);
      expect(new Exchange('y').canCacheDeclaration).toBe(true);
      const b = ex.binding('rk', { u: 1 }, { v: 2 });
      expect(b).toBeInstanceOf(Binding);
      expect([b.exchange, b.routingKey, b.arguments, b.unbindArguments]).toEqual([
        ex,
        'rk',
        { u: 1 },
        { v: 2 },
      ]);
      expect(() => ex.declare()).toThrow(NotBoundError);
      const m = ex.Message('b', { priority: 3, properties: { correlationId: 'c' }, headers: { h: 1 } });
      expect(m.properties).toMatchObject({
        deliveryMode: 1,
        priority: 3,
        correlationId: 'c',
        headers: { h: 1 },
      });
    });

    it('a 406 on an inequivalent declare rejects and the channel stays usable', async () => {
      const conn = connect();
      const name = uid('ineq');
      await tempExchange(conn, name, { durable: false }).declare();
      const err = await new Exchange(name, { durable: true })
        .bind(conn)
        .declare()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChannelError);
      expect((err as ChannelError).code).toBe('PRECONDITION_FAILED');
      const q = tempQueue(conn, uid('after406'));
      await q.declare();
      expect(await q.get()).toBeNull();
    });
  });

  describe('Queue', () => {
    it('declare with exchange + bindings, get, purge, delete', async () => {
      const conn = connect();
      const ex = tempExchange(conn, uid('qex'));
      const ex2 = tempExchange(conn, uid('qex2'), { type: 'topic' });
      const q = tempQueue(conn, uid('q'), {
        exchange: ex,
        routingKey: 'rk',
        bindings: [new Binding(ex2, 'a.#')],
      });
      expect(await q.declare()).toBe(q.name);
      const p = new Producer(conn);
      await p.publish('one', { exchange: ex, routingKey: 'rk', serializer: 'json' });
      await p.publish('two', { exchange: ex2, routingKey: 'a.b.c' });
      await p.publish({ n: 3 }, { exchange: ex, routingKey: 'rk' });
      await waitUntil(() => true, { what: 'noop' });
      const m = await getOne(q);
      expect(m.payload).toBe('one');
      m.ack();
      const m2 = await getOne(q);
      expect(m2.payload).toBe('two');
      m2.requeue();
      expect(await purgeEventually(q, 2)).toBe(2);
      await q.unbindFrom(ex, { routingKey: 'rk' });
      await p.publish('lost', { exchange: ex, routingKey: 'rk' });
      expect(await q.get()).toBeNull();
      await p.publish('kept', { exchange: ex2, routingKey: 'a.x' });
      await getOne(q);
      expect(await q.delete()).toBeGreaterThanOrEqual(0);
      await expect(q.queueDeclare({ passive: true })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('expires / messageTtl / maxLength become integer x- arguments', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('ttl'), { expires: 60_000, messageTtl: 50, maxLength: 10 });
      expect(q.queueArguments).toEqual({ 'x-expires': 60000, 'x-message-ttl': 50, 'x-max-length': 10 });
      await q.declare();
      // The broker stores them: a different value is inequivalent.
      const err = await new Queue(q.name, { durable: false, expires: 1000 })
        .bind(conn)
        .declare()
        .catch((e: unknown) => e);
      expect((err as ChannelError).code).toBe('PRECONDITION_FAILED');
      // Confirmed: the message is in the queue before it is counted.
      const p = new Producer(await conn.channel({ confirm: true }));
      await p.publish('x', { routingKey: q.name });
      // Message TTL 50 ms: the broker drops it (counted without consuming: a get would take it).
      await waitUntil(async () => (await q.queueDeclare({ passive: true }))?.messageCount === 0, {
        what: 'the message expired',
      });
      expect(await q.get({ noAck: true })).toBeNull();
      expect(new Queue('e', { exclusive: true }).autoDelete).toBe(true);
      expect(new Queue('e', { autoDelete: true }).canCacheDeclaration).toBe(false);
    });

    it('server-named queue gets its name on declare', async () => {
      const conn = connect();
      const q = new Queue('', { durable: false, exclusive: true }).bind(conn);
      await q.declare();
      expect(q.name).not.toBe('');
    });
  });

  describe('Producer', () => {
    it('publishes with each serializer, compression and headers', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('ser'));
      await q.declare();
      const p = new Producer(conn, { routingKey: q.name });
      const cases: Array<[string, unknown, string]> = [
        ['json', { a: [1, 'b'] }, 'application/json'],
        ['msgpack', { a: [1, 'b'] }, 'application/x-msgpack'],
        ['yaml', { a: [1, 'b'] }, 'application/x-yaml'],
      ];
      for (const [serializer, body, ct] of cases) {
        await p.publish(body, { serializer, headers: { h: 'v' }, compression: 'zlib', correlationId: 'cid' });
        const m = await getOne(q);
        expect(m.contentType).toBe(ct);
        expect(m.headers).toEqual({ h: 'v', compression: 'application/x-gzip' });
        expect(m.payload).toEqual(body);
        expect(m.properties).toMatchObject({ correlationId: 'cid', priority: 0, deliveryMode: 2 });
        m.ack();
      }
      await p.publish(Buffer.from([1, 2, 3]), { contentType: 'application/data' });
      const raw = await getOne(q);
      expect(raw.contentEncoding).toBe('binary');
      expect([...(raw.payload as Buffer)]).toEqual([1, 2, 3]);
      raw.ack();
      await p.publish('text', {
        contentType: 'text/plain',
        deliveryMode: 'transient',
        expiration: 60000,
        replyTo: 'r',
      });
      const txt = await getOne(q);
      expect(txt.payload).toBe('text');
      expect(txt.properties).toMatchObject({ deliveryMode: 1, expiration: '60000', replyTo: 'r' });
      txt.ack();
    });

    it('maybeDeclare caches per connection; NoCacheQueue is always declared; declare list', async () => {
      const conn = connect();
      const ex = tempExchange(conn, uid('cache'));
      const p = new Producer(conn, { exchange: ex });
      expect(await p.maybeDeclare(ex)).toBe(true);
      expect(await p.maybeDeclare(ex)).toBe(false);
      expect(conn.declaredEntities.has(ex.cacheKey)).toBe(true);
      const name = uid('nc');
      const nc = new NoCacheQueue(name, {
        exchange: ex,
        routingKey: name,
        durable: false,
        autoDelete: true,
        expires: 60_000,
      });
      cleanup.push(() => new Queue(name).bind(connect()).delete());
      expect(await p.maybeDeclare(nc)).toBe(true);
      expect(await p.maybeDeclare(nc)).toBe(true);
      await p.publish({ ok: 1 }, { routingKey: name, declare: [nc], declareNowait: true });
      await p.publish({ ok: 2 }, { routingKey: name, declare: [nc] });
      const bound = nc.bind(conn);
      expect((await getOne(bound)).payload).toEqual({ ok: 1 });
      expect((await getOne(bound)).payload).toEqual({ ok: 2 });
      await p.declare();
    });

    it('mandatory unroutable messages reach onReturn', async () => {
      const conn = connect();
      const ex = tempExchange(conn, uid('ret'));
      const returned: Array<[string, string, string]> = [];
      const p = new Producer(conn, {
        exchange: ex,
        onReturn: (err, exchange, routingKey) => void returned.push([err.code, exchange, routingKey]),
      });
      await p.publish('x', { routingKey: 'nowhere', mandatory: true });
      await waitUntil(() => returned.length > 0, { what: 'basic.return' });
      expect(returned[0]).toEqual(['NO_ROUTE', ex.name, 'nowhere']);
      p.close();
    });

    it('publish with retry goes through ensure (non-recoverable errors at once)', async () => {
      const conn = connect();
      const p = new Producer(conn);
      const err = await p
        .publish(1n, { retry: true, retryPolicy: { maxRetries: 3 } })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ENCODE_ERROR' });
    });
  });

  describe('Consumer', () => {
    it('consume, callbacks, consumingFrom, cancelByQueue, cancel, drainEvents', async () => {
      const conn = connect();
      const q1 = tempQueue(conn, uid('c1'));
      const q2 = tempQueue(conn, uid('c2'));
      const got: unknown[] = [];
      const c = new Consumer(conn, { queues: [q1], accept: ['json'] });
      c.registerCallback((body, m) => {
        got.push(body);
        m.ack();
      });
      await c.consume();
      expect(c.consumingFrom(q1)).toBe(true);
      expect(c.consumingFrom(q2.name)).toBe(false);
      c.addQueue(q2);
      await c.consume();
      expect(c.consumingFrom(q2.name)).toBe(true);
      const p = new Producer(conn);
      const drained = conn.drainEvents({ timeout: 10_000 });
      await p.publish({ a: 1 }, { routingKey: q1.name });
      await drained;
      await p.publish({ b: 2 }, { routingKey: q2.name });
      await waitUntil(() => got.length === 2, { what: 'two messages' });
      expect(got).toEqual([{ a: 1 }, { b: 2 }]);
      await c.cancelByQueue(q1.name);
      expect(c.consumingFrom(q1)).toBe(false);
      await c.cancel();
      expect(c.consumingFrom(q2)).toBe(false);
      await expect(conn.drainEvents({ timeout: 20 })).rejects.toBeInstanceOf(TimeoutError);
      expect(c.noAck).toBe(false);
      expect(c.queues.map((q) => q.name)).toEqual([q1.name, q2.name]);
    });

    it('receive without callbacks, onMessage, onDecodeError, accept, undecodable left unacked', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('dec'));
      await q.declare();
      const c0 = new Consumer(conn, { queues: [q] });
      expect(() => c0.receive({}, {} as Message)).toThrow(CeleryAmqpError);
      expect(() => c0.receive({}, {} as Message)).toThrow('No consumer callbacks registered');

      const p = new Producer(conn, { routingKey: q.name });
      const decodeErrors: string[] = [];
      const c = new Consumer(conn, {
        queues: [q],
        accept: ['json'],
        onDecodeError: (m, err) => {
          decodeErrors.push((err as CeleryAmqpError).code);
          m.reject();
        },
        callbacks: [(_b, m) => m.ack()],
      });
      await c.consume();
      await p.publish({ x: 1 }, { serializer: 'msgpack' });
      await waitUntil(() => decodeErrors.length === 1, { what: 'decode error' });
      expect(decodeErrors).toEqual(['CONTENT_DISALLOWED']);
      await c.cancel();

      // no onDecodeError: reported on the consumer's error event, message not lost
      const errors: Error[] = [];
      const c2 = new Consumer(conn, { queues: [q], accept: ['json'], callbacks: [() => undefined] });
      c2.on('error', (e) => errors.push(e));
      await c2.consume();
      await p.publish({ y: 1 }, { serializer: 'msgpack' });
      await waitUntil(() => errors.length === 1, { what: 'reported error' });
      await c2.cancel();
      await c2.recover({ requeue: true });
      const back = await getOne(q);
      expect(back.contentType).toBe('application/x-msgpack');
      back.ack();

      // onMessage gets raw messages
      const raws: Message[] = [];
      const c3 = new Consumer(conn, { queues: [q], onMessage: (m) => raws.push(m) });
      await c3.consume();
      await p.publish('raw', { contentType: 'text/plain' });
      await waitUntil(() => raws.length === 1, { what: 'raw' });
      expect(raws[0]?.body.toString()).toBe('raw');
      raws[0]?.ack();
      await c3.cancel();
    });

    it('qos/prefetch, flow, purge, recover and async iteration with break', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('it'));
      const c = new Consumer(conn, { queues: [q], prefetchCount: 2 });
      await c.declare();
      const p = new Producer(conn, { routingKey: q.name });
      for (let i = 0; i < 5; i++) await p.publish({ i });
      const seen: number[] = [];
      for await (const m of c) {
        seen.push((m.payload as { i: number }).i);
        m.ack();
        if (seen.length === 3) break;
      }
      expect(seen).toEqual([0, 1, 2]);
      expect(c.consumingFrom(q)).toBe(false);
      await c.qos({ prefetchCount: 1 });
      await c.flow(true);
      expect(await purgeEventually(c, 2)).toBe(2);
      await expect(async () => {
        for await (const _m of c.iterate({ timeout: 30 })) void _m;
      }).rejects.toBeInstanceOf(TimeoutError);
    });

    it('revive moves the consumer to another channel', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('rev'));
      const got: unknown[] = [];
      const c = new Consumer(conn, { queues: [q], callbacks: [(b, m) => (got.push(b), m.ack())] });
      await c.consume();
      await c.cancel();
      const ch = await conn.channel();
      await c.revive(ch);
      expect(c.channel).toBe(ch);
      await c.consume();
      await new Producer(conn).publish('r', { routingKey: q.name });
      await waitUntil(() => got.length === 1, { what: 'revived delivery' });
    });
  });

  describe('Message', () => {
    it('ack / reject / requeue and double settle', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('msg'));
      await q.declare();
      const p = new Producer(conn, { routingKey: q.name });
      await p.publish('a');
      const m = await getOne(q);
      expect(m.state).toBe('RECEIVED');
      expect(m.acknowledged).toBe(false);
      expect(m.requeue()).toBe(true);
      expect(m.state).toBe('REQUEUED');
      expect(() => m.ack()).toThrow(MessageStateError);
      expect(() => m.ack()).toThrow('Message already acknowledged with state: REQUEUED');
      const again = await getOne(q);
      expect(again.redelivered).toBe(true);
      expect(again.deliveryTag).toBeGreaterThan(0);
      expect(again.deliveryInfo.routingKey).toBe(q.name);
      again.reject();
      expect(again.state).toBe('REJECTED');
      expect(await q.get()).toBeNull();
      await p.publish('b');
      const n = await getOne(q, true);
      expect(() => n.ack()).toThrow(MessageStateError);
      await p.publish('c');
      const c = await getOne(q);
      c.ack();
      expect(c.acknowledged).toBe(true);
      expect(() => c.reject()).toThrow('Message already acknowledged with state: ACK');
      expect(c.decode()).toBe('c');
    });
  });

  describe('Connection', () => {
    it("defaults to Celery's broker: CELERY_BROKER_URL, else amqp://localhost; memory:// only when named", () => {
      vi.stubEnv('CELERY_BROKER_URL', '');
      try {
        const c = new Connection();
        opened.push(c);
        expect(c.displayUrl).toBe('amqp://guest:****@localhost:5672//');
        expect(c.transportName).toBe('amqp');
        vi.stubEnv('CELERY_BROKER_URL', 'memory://from-env');
        const e = new Connection();
        opened.push(e);
        expect(e.transportName).toBe('memory');
        expect(e.displayUrl).toMatch(/^memory:\/\/.*@from-env\//);
      } finally {
        vi.unstubAllEnvs();
      }
    });

    it('ensure retries recoverable errors per policy and throws others at once', async () => {
      const conn = connect();
      const retries: number[] = [];
      let calls = 0;
      const v = await conn.ensure(
        () => (++calls < 3 ? Promise.reject(new ConnectionError('flaky')) : Promise.resolve('ok')),
        {
          maxRetries: 5,
          intervalStart: 0,
          intervalStep: 1,
          intervalMax: 1,
          onRetry: (_e, n) => void retries.push(n),
        },
      );
      expect(v).toBe('ok');
      expect(retries).toEqual([1, 2]);
      let other = 0;
      await expect(
        conn.ensure(() => (other++, Promise.reject(new ChannelError('bad', { code: 'NOT_FOUND' }))), {
          maxRetries: 5,
        }),
      ).rejects.toBeInstanceOf(ChannelError);
      expect(other).toBe(1);
      await expect(
        conn.ensure(() => Promise.reject(new ConnectionError('down')), { maxRetries: 1, intervalStart: 0 }),
      ).rejects.toBeInstanceOf(ConnectionError);
    });

    it('displayUrl redacts, close is idempotent, closed connections reject', async () => {
      const conn = connect();
      await conn.connect();
      expect(conn.connected).toBe(true);
      expect(conn.displayUrl).not.toContain(':guest@');
      await conn.close();
      await conn.close();
      expect(conn.connected).toBe(false);
      await expect(conn.channel()).rejects.toBeInstanceOf(ConnectionError);
      await expect(conn.drainEvents({ timeout: 10 })).rejects.toBeInstanceOf(ConnectionError);
    });

    it('recovers after a cut: consumer resumes, entities redeclared, ensure reconnects', async () => {
      const name = uid('rec');
      const conn = connect({ retryPolicy: { intervalStart: 50, intervalStep: 50, intervalMax: 200 } });
      const events: string[] = [];
      conn.on('disconnect', () => events.push('disconnect'));
      conn.on('revive', () => events.push('revive'));
      // exclusive: the broker deletes it with the connection, so only redeclaration brings it back
      const q = new Queue(name, { durable: false, exclusive: true }).bind(conn);
      const got: unknown[] = [];
      const c = new Consumer(conn, { queues: [q], callbacks: [(b, m) => (got.push(b), m.ack())] });
      await c.consume();
      const p = new Producer(conn, { routingKey: name });
      await p.publish('before');
      await waitUntil(() => got.length === 1, { what: 'first delivery' });
      await cut(conn);
      await waitUntil(() => events.includes('revive'), { what: 'revive' });
      await p.publish('after', { retry: true, retryPolicy: { maxRetries: 10, intervalStart: 50 } });
      await waitUntil(() => got.length === 2, { what: 'delivery after the cut' });
      expect(got).toEqual(['before', 'after']);
      expect(events[0]).toBe('disconnect');
      const r = await conn.ensure(() => q.queueDeclare({ passive: true }), {
        maxRetries: 10,
        intervalStart: 50,
      });
      expect(r?.consumerCount).toBe(1);
    });
  });

  describe('Recovery details', () => {
    it('after a channel error the channel reopens and its consumers keep receiving', async () => {
      const conn = connect();
      const q = tempQueue(conn, uid('chanerr'));
      const got: unknown[] = [];
      const c = new Consumer(conn, { queues: [q], callbacks: [(b, m) => (got.push(b), m.ack())] });
      await c.consume();
      const ex = tempExchange(conn, uid('chanerr-ex'), { durable: false });
      await ex.declare();
      await expect(new Exchange(ex.name, { durable: true }).bind(conn).declare()).rejects.toMatchObject({
        code: 'PRECONDITION_FAILED',
      });
      await new Producer(await conn.channel()).publish('still here', { routingKey: q.name });
      await waitUntil(() => got.length === 1, { what: 'delivery after a channel error' });
      expect(got).toEqual(['still here']);
    });

    it('operations issued while disconnected wait; old messages settle as no-ops', async () => {
      const name = uid('wait');
      const conn = connect({ retryPolicy: { intervalStart: 50, intervalStep: 50, intervalMax: 200 } });
      const q = new Queue(name, { durable: false, exclusive: true }).bind(conn);
      await q.declare();
      await new Producer(conn, { routingKey: name }).publish('m1');
      const old = await getOne(q);
      let lost = false;
      conn.on('disconnect', () => (lost = true));
      await cut(conn);
      await waitUntil(() => lost, { what: 'disconnect event' });
      // Issued during the outage: waits for the reconnect and the queue's redeclaration.
      const count = await q.purge({ timeout: 10_000 });
      expect(count).toBe(0);
      expect(old.ack()).toBe(false);
      expect(old.state).toBe('ACK');
    });

    it('without autoReconnect operations fail with ConnectionError', async () => {
      const conn = connect({ autoReconnect: false });
      const q = tempQueue(conn, uid('noreco'));
      await q.declare();
      let lost = false;
      conn.on('disconnect', () => (lost = true));
      await cut(conn);
      await waitUntil(() => lost, { what: 'disconnect event' });
      await expect(q.get()).rejects.toBeInstanceOf(ConnectionError);
      await conn.revive({ timeout: 10_000 });
      expect(await q.get()).toBeNull();
    });

    it('fails over to the next address of a list', async () => {
      // Port 1 refuses connections: the first address fails, the second is ours.
      const bad = 'amqp://guest:guest@127.0.0.1:1//';
      const fo = new Connection(`${bad};${t.url}`, { heartbeat: 0, connectTimeout: 2000 });
      opened.push(fo);
      await fo.connect();
      expect(fo.connected).toBe(true);
      expect(fo.transportName).toBe(t.kind);
    });
  });

  /** Cuts our connection from the broker side. */
  async function cut(conn: Connection): Promise<void> {
    await conn.connect();
    if (t.kind === 'memory') {
      MemoryBroker.get('localhost').disconnectAll('test cut');
      return;
    }
    expect(await closeConnection(conn.options.connectionName ?? '', 'test cut')).toBe(1);
  }
});

/** The next message of `q`, polled with basic.get. */
function getOne(q: Queue, noAck = false): Promise<Message> {
  return waitUntil(() => q.get({ noAck }), { what: `a message in ${q.name}` });
}

/** Purges until `expected` messages went (requeued ones may still be on their way back on RabbitMQ). */
async function purgeEventually(target: { purge(): Promise<number> }, expected: number): Promise<number> {
  let total = 0;
  await waitUntil(async () => (total += await target.purge()) >= expected, {
    what: `${expected} messages purged`,
  });
  return total;
}
