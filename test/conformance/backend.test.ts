/**
 * AMQPBackend on every transport: the same bodies on memory:// and RabbitMQ.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { TaskMeta } from '../../src/celery/backend-types.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import { BacklogLimitExceeded } from '../../src/celery/exceptions.js';
import {
  ArgumentError,
  CeleryAmqpError,
  ContentDisallowedError,
  DecodeError,
  EncodeError,
  TimeoutError,
} from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Consumer } from '../../src/kombu/consumer.js';
import { Exchange } from '../../src/kombu/exchange.js';
import { Producer } from '../../src/kombu/producer.js';
import { Queue } from '../../src/kombu/queue.js';
import { newTaskId, uid, waitUntil } from '../fixture.js';
import { transports } from './transports.js';

const rk = (id: string): string => id.replaceAll('-', '');

describe.each(transports)('AMQPBackend on $name', (t) => {
  const backends: AMQPBackend[] = [];
  const queues = new Set<string>();
  let shared: Connection | undefined;

  function backend(options: AMQPBackendOptions = {}): AMQPBackend {
    // memory:// is per-process: every backend of a test shares one Connection so they meet.
    shared ??= new Connection(t.url, { heartbeat: 0 });
    const b = new AMQPBackend({ connection: shared, ...options });
    backends.push(b);
    return b;
  }
  /** A fresh task id whose queue is deleted after the test. */
  function trackedId(): string {
    const id = newTaskId();
    queues.add(rk(id));
    return id;
  }

  afterEach(async () => {
    for (const b of backends.splice(0)) await b.close();
    if (shared !== undefined) {
      const ch = await shared.channel();
      for (const q of queues) await ch.deleteQueue({ queue: q }).catch(() => undefined);
      queues.clear();
      await shared.close();
      shared = undefined;
    }
  });

  /** A raw publish to a task queue, bypassing the backend (bad input, custom bodies). */
  async function rawPublish(
    b: AMQPBackend,
    id: string,
    body: unknown,
    opts: { contentType?: string; headers?: Record<string, unknown> } = {},
  ): Promise<void> {
    const ch = await b.connection.channel({ confirm: true });
    await b.queueFor(rk(id), ch).declare();
    const p = new Producer(ch, { exchange: b.exchange });
    await p.publish(body, {
      routingKey: rk(id),
      ...(opts.contentType === undefined ? {} : { contentType: opts.contentType }),
      ...(opts.headers === undefined ? {} : { headers: opts.headers }),
    });
    await ch.close();
  }

  async function exists(b: AMQPBackend, id: string): Promise<boolean> {
    const ch = await b.connection.channel();
    try {
      await ch.declareQueue({ queue: rk(id), passive: true });
      return true;
    } catch (err) {
      if (err instanceof CeleryAmqpError && err.code === 'NOT_FOUND') return false;
      throw err;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async function consumers(b: AMQPBackend, id: string): Promise<number> {
    const ch = await b.connection.channel();
    const ok = await ch.declareQueue({ queue: rk(id), passive: true }).catch(() => null);
    await ch.close().catch(() => undefined);
    return ok?.consumerCount ?? 0;
  }

  async function queueDepth(b: AMQPBackend, id: string): Promise<number> {
    const ch = await b.connection.channel();
    const ok = await ch.declareQueue({ queue: rk(id), passive: true });
    await ch.close();
    return ok?.messageCount ?? -1;
  }

  it('stores and reads back a SUCCESS result (get, poll, waitFor)', async () => {
    const b = backend();
    const id = trackedId();
    await expect(b.getTaskMeta(id)).resolves.toMatchObject({ status: 'PENDING', result: null });
    await b.storeResult(id, { n: 1 }, 'SUCCESS');
    const meta = await b.getTaskMeta(id);
    expect(meta).toEqual({
      task_id: id,
      status: 'SUCCESS',
      result: { n: 1 },
      traceback: null,
      children: null,
    });
    expect(await b.poll(id)).toEqual(meta);
    // Polling never consumes: still one message.
    expect(await queueDepth(b, id)).toBe(1);
    expect(await b.waitFor(id, { timeout: 5000 })).toEqual(meta);
  });

  it('fast-forwards STARTED, RETRY, SUCCESS to SUCCESS and leaves one message', async () => {
    const b = backend();
    const id = trackedId();
    await b.storeResult(id, { pid: 1, hostname: 'h' }, 'STARTED');
    await b.storeResult(id, new Error('again'), 'RETRY');
    await b.storeResult(id, 7, 'SUCCESS');
    expect((await b.getTaskMeta(id)).status).toBe('SUCCESS');
    expect(await queueDepth(b, id)).toBe(1);
    expect((await b.getTaskMeta(id)).result).toBe(7);
  });

  it('raises BacklogLimitExceeded past the limit and keeps the messages', async () => {
    const b = backend();
    const id = trackedId();
    for (let i = 0; i < 5; i += 1) await b.storeResult(id, i, 'PROGRESS');
    await expect(b.getTaskMeta(id, { backlogLimit: 3 })).rejects.toBeInstanceOf(BacklogLimitExceeded);
    expect((await b.getTaskMeta(id, { backlogLimit: 10 })).result).toBe(4);
  });

  it('waitFor: STARTED never resolves (TimeoutError); a custom state is skipped too', async () => {
    const b = backend({ cacheMax: 0 });
    const id = trackedId();
    await b.storeResult(id, { pid: 1 }, 'STARTED');
    await b.storeResult(id, { step: 1 }, 'PROGRESS');
    let intervals = 0;
    const err = await b
      .waitFor(id, { timeout: 300, onInterval: () => (intervals += 1) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toContain('last state seen: PROGRESS');
    expect(intervals).toBeGreaterThan(0);
    // Only READY metas are cached: a non-ready state is no final answer.
    expect(b.cache.get(id)).toBeUndefined();
  });

  it('a read that consumes the result leaves no queue behind (basic.get path and consumer path)', async () => {
    const b = backend();
    const [stored, later] = [trackedId(), trackedId()];
    await b.storeResult(stored, { pid: 1 }, 'STARTED');
    await b.storeResult(stored, 'done', 'SUCCESS');
    expect(await queueDepth(b, stored)).toBe(2);
    // Already stored, so read with basic.get: the emptied queue is deleted, as Celery's
    // consumer read leaves nothing behind.
    expect((await b.waitFor(stored, { timeout: 5000 })).result).toBe('done');
    await waitUntil(async () => !(await exists(b, stored)), { what: `the queue of ${stored} to go` });
    // Read through a consumer (stored while waiting): RabbitMQ deletes the auto-delete queue.
    const waiting = b.waitFor(later, { timeout: 5000 });
    await waitUntil(async () => (await consumers(b, later)) > 0, { what: 'a consumer on the task queue' });
    await b.storeResult(later, 'late', 'SUCCESS');
    expect((await waiting).result).toBe('late');
    await waitUntil(async () => !(await exists(b, later)), { what: `the queue of ${later} to go` });
    // The results stay readable in this process.
    expect((await b.getTaskMeta(stored)).result).toBe('done');
    expect((await b.waitFor(later, { timeout: 1000 })).result).toBe('late');
  });

  it('a read that leaves messages behind, or autoDelete false, keeps the queue', async () => {
    const kept = backend({ autoDelete: false });
    const id = trackedId();
    await kept.storeResult(id, 1, 'SUCCESS');
    await kept.waitFor(id, { timeout: 5000 });
    await kept.close(); // waits for any cleanup in flight
    expect(await queueDepth(backend(), id)).toBe(0);
    const b = backend();
    const twice = trackedId();
    await b.storeResult(twice, 1, 'SUCCESS');
    await b.storeResult(twice, 2, 'SUCCESS');
    expect((await b.waitFor(twice, { timeout: 5000 })).result).toBe(1);
    await b.close();
    expect(await queueDepth(backend(), twice)).toBe(1);
  });

  it('a store after the result exchange was deleted declares it again, as Celery does before every store', async () => {
    const exchange = uid('deleted-ex');
    const b = backend({ exchange, persistent: false });
    const [first, second] = [trackedId(), trackedId()];
    await b.storeResult(first, 1, 'SUCCESS');
    const admin = await b.connection.channel();
    await admin.deleteExchange({ exchange });
    // Once-per-connection declaring failed this store with 404 until a reconnect.
    await b.storeResult(second, 2, 'SUCCESS');
    expect((await b.getTaskMeta(second)).result).toBe(2);
    await admin.deleteExchange({ exchange });
    await admin.close();
  });

  it('stores FAILURE as the exception dict and returns it (no propagation)', async () => {
    const b = backend();
    const id = trackedId();
    await b.markAsFailure(id, new TypeError('bad'), { traceback: 'Traceback...' });
    const meta = await b.waitFor(id, { timeout: 5000 });
    expect(meta.status).toBe('FAILURE');
    expect(meta.result).toEqual({ exc_type: 'TypeError', exc_message: ['bad'], exc_module: 'builtins' });
    expect(meta.traceback).toBe('Traceback...');
  });

  it('children and correlation_id come from the request', async () => {
    const b = backend();
    const id = trackedId();
    const child = newTaskId();
    await b.storeResult(id, 1, 'SUCCESS', {
      request: { correlation_id: 'corr', children: [[[child, null], null]] },
    });
    expect(b.destinationFor(id, { correlation_id: 'corr' })).toEqual([rk(id), 'corr']);
    expect(b.destinationFor(id)).toEqual([rk(id), id]);
    const ch = await b.connection.channel();
    const m = await ch.get({ queue: rk(id), noAck: true });
    await ch.close();
    expect(m?.properties.correlationId).toBe('corr');
    expect(m?.properties.deliveryMode).toBe(2);
    expect(m?.properties.headers).toEqual({});
    expect((m?.payload as TaskMeta).children).toEqual([[[child, null], null]]);
  });

  it('rejects bad task ids with ArgumentError', async () => {
    const b = backend();
    await expect(b.storeResult('', 1, 'SUCCESS')).rejects.toBeInstanceOf(ArgumentError);
    await expect(b.getTaskMeta(42 as unknown as string)).rejects.toThrow(/taskId/);
    await expect(b.waitFor(null as unknown as string)).rejects.toBeInstanceOf(ArgumentError);
  });

  it.each([
    ['json', undefined],
    ['msgpack', undefined],
    ['yaml', undefined],
    ['json', 'zlib'],
  ])('round-trips with serializer %s and compression %s', async (serializer, compression) => {
    const b = backend({ serializer, ...(compression === undefined ? {} : { compression }) });
    const id = trackedId();
    await b.storeResult(id, { a: [1, 'two', null] }, 'SUCCESS');
    expect((await b.getTaskMeta(id)).result).toEqual({ a: [1, 'two', null] });
    expect((await b.waitFor(id, { timeout: 5000 })).result).toEqual({ a: [1, 'two', null] });
  });

  it('transient results use delivery_mode 1 and non-durable queues; expires null adds no x-expires', async () => {
    const b = backend({ persistent: false, expires: null, exchange: uid('results-transient') });
    const id = trackedId();
    await b.storeResult(id, 1, 'SUCCESS');
    const ch = await b.connection.channel();
    const m = await ch.get({ queue: rk(id), noAck: false });
    expect(m?.properties.deliveryMode).toBe(1);
    m?.requeue();
    // Redeclaring with the same flags succeeds; durable true would be refused (406).
    await expect(ch.declareQueue({ queue: rk(id), durable: false, autoDelete: true })).resolves.toBeTruthy();
    await ch.close();
    const ch2 = await b.connection.channel();
    await expect(ch2.declareQueue({ queue: rk(id), durable: true, autoDelete: true })).rejects.toMatchObject({
      code: 'PRECONDITION_FAILED',
    });
    await ch2.close();
    await ch2.connection
      .channel()
      .then((c) => c.deleteExchange({ exchange: b.exchange.name }).then(() => c.close()));
  });

  it('getMany: cached ready results first, then arrival order; each id once', async () => {
    const b = backend({ cacheMax: 0 });
    const ids = Array.from({ length: 500 }, () => trackedId());
    const cached = ids[0] as string;
    await b.storeResult(cached, 'c', 'SUCCESS');
    await b.waitFor(cached, { timeout: 5000 });
    const rest = ids.slice(1);
    // Ready before the call: arrive in consume order. Then ping-pong in reverse: arrival order.
    for (const id of rest.slice(0, 250)) await b.storeResult(id, id, 'SUCCESS');
    const later = rest.slice(250).reverse();
    const seen: string[] = [];
    const it = b.getMany(ids, { timeout: 30_000 });
    const take = async (): Promise<void> => {
      const r = await it.next();
      if (r.done === true) throw new Error('ended early');
      const [id, meta] = r.value;
      expect(meta.result).toBe(id === cached ? 'c' : id);
      seen.push(id);
    };
    for (let i = 0; i < 251; i += 1) await take();
    for (const id of later) {
      await b.storeResult(id, id, 'SUCCESS');
      await take();
    }
    expect((await it.next()).done).toBe(true);
    expect(seen[0]).toBe(cached);
    expect(new Set(seen.slice(1, 251))).toEqual(new Set(rest.slice(0, 250)));
    expect(seen.slice(251)).toEqual(later);
  });

  it('getMany: break cancels every consumer; an outside id only goes to the cache; timeout names the missing', async () => {
    const b = backend({ cacheMax: 0, autoDelete: false });
    const ids = Array.from({ length: 20 }, () => trackedId());
    await b.storeResult(ids[0] as string, 0, 'SUCCESS');
    for await (const [id] of b.getMany(ids, { timeout: 10_000 })) {
      expect(id).toBe(ids[0]);
      break;
    }
    // No consumers left on any of the queues (a queue whose batch the break came before was
    // never declared: 404, so no consumer either).
    const ch = await b.connection.channel();
    for (const id of ids) {
      const ok = await ch.declareQueue({ queue: rk(id), passive: true }).catch(() => null);
      expect(ok?.consumerCount ?? 0).toBe(0);
    }
    await ch.close();
    const err = await (async () => {
      for await (const _ of b.getMany(ids.slice(1, 4), { timeout: 200 })) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/3 of 3/);
  });

  it('getMany binds the queue of a result still to come (a publisher that only publishes reaches it)', async () => {
    const b = backend({ cacheMax: 0 });
    const [early, late] = [trackedId(), trackedId()];
    await b.storeResult(early, 'e', 'SUCCESS');
    const it = b.getMany([early, late], { timeout: 10_000 });
    expect((await it.next()).value?.[0]).toBe(early);
    // Publish without any declaration: only getMany's binding can route it.
    const ch = await b.connection.channel({ confirm: true });
    const p = new Producer(ch, { exchange: b.exchange, autoDeclare: false });
    const body = { task_id: late, status: 'SUCCESS', result: 'l', traceback: null, children: null };
    await waitUntil(async () => (await consumers(b, late)) > 0, { what: 'a consumer on the late queue' });
    await p.publish(body, { routingKey: rk(late) });
    await ch.close();
    const r = await it.next();
    expect(r.value?.[0]).toBe(late);
    expect(r.value?.[1].result).toBe('l');
    expect((await it.next()).done).toBe(true);
  });

  it('getMany consumes what it yields (acked on close, also outside ids and non-ready states); noAck false leaves it all', async () => {
    // No result cache (-1, the default): the second call must read every queue.
    const b = backend({ cacheMax: -1, autoDelete: false });
    const ids = Array.from({ length: 30 }, () => trackedId());
    const outside = trackedId();
    const odd = ids[0] as string;
    await b.storeResult(outside, 'x', 'SUCCESS');
    // Ahead of odd's own result in its queue: a STARTED state and a ready result for an id
    // nobody asked for. Both are consumed on the way to odd's result.
    await b.storeResult(odd, { pid: 1 }, 'STARTED');
    const ch = await b.connection.channel({ confirm: true });
    const p = new Producer(ch, { exchange: b.exchange, autoDeclare: false });
    await p.publish(
      { task_id: outside, status: 'SUCCESS', result: 'x', traceback: null, children: null },
      { routingKey: rk(odd) },
    );
    await ch.close();
    for (const id of ids) await b.storeResult(id, id, 'SUCCESS');

    const kept = new Set<string>();
    for await (const [id] of b.getMany(ids.slice(10), { timeout: 10_000, noAck: false })) kept.add(id);
    expect(kept.size).toBe(20);
    for (const id of ids.slice(10)) expect(await queueDepth(b, id)).toBe(1);

    const seen = new Set<string>();
    for await (const [id] of b.getMany(ids, { timeout: 10_000 })) seen.add(id);
    expect(seen).toEqual(new Set(ids));
    for (const id of ids) expect(await queueDepth(b, id)).toBe(0);
    expect(await queueDepth(b, outside)).toBe(1);
  });

  it('drainEvents: returns the ready results a consumer delivers; a body that is no result is reported; deadline', async () => {
    const b = backend();
    const [id, bad] = [trackedId(), trackedId()];
    const ch = await b.connection.channel();
    const consumer = new Consumer(ch, {
      queues: [b.queueFor(rk(id), ch), b.queueFor(rk(bad), ch)],
      noAck: true,
    });
    await consumer.consume();
    const errors: Error[] = [];
    b.on('error', (err) => errors.push(err));
    // drainEvents installs its callback at once: everything stored after the call is its.
    const draining = b.drainEvents(b.connection, consumer, { timeout: 5000 });
    await rawPublish(b, bad, [1, 2]);
    await b.storeResult(id, { pid: 1 }, 'STARTED');
    await b.storeResult(id, 5, 'SUCCESS');
    const results = await draining;
    expect(Object.keys(results)).toEqual([id]);
    expect(results[id]?.result).toBe(5);
    await waitUntil(() => errors.length > 0, { what: 'the malformed body to be reported' });
    expect(errors[0]).toBeInstanceOf(DecodeError);
    await expect(b.drainEvents(b.connection, consumer, { timeout: 100 })).rejects.toBeInstanceOf(
      TimeoutError,
    );
    await consumer.cancel();
    await ch.close();
  });

  it('saves, restores and deletes a group', async () => {
    const b = backend();
    const gid = trackedId();
    const ids = [newTaskId(), newTaskId()];
    await b.saveGroup(gid, ids);
    const other = backend();
    const g = await other.restoreGroup(gid);
    expect(g?.id).toBe(gid);
    expect(g?.results.map((r) => r.id)).toEqual(ids);
    // Still there for others.
    expect((await backend().restoreGroup(gid, { cache: false }))?.results.length).toBe(2);
    await b.deleteGroup(gid);
    expect(await backend().restoreGroup(gid)).toBeNull();
  });

  it('bad input: malformed, disallowed, unknown compression, missing fields → DecodeError naming the task; requeued', async () => {
    const b = backend({ autoDelete: false });
    const cases: Array<[unknown, { contentType?: string; headers?: Record<string, unknown> }, RegExp]> = [
      ['{not json', { contentType: 'application/json' }, /decode/i],
      ['x', { contentType: 'application/x-python-serialize' }, /untrusted|Refusing/],
      ['abc', { contentType: 'application/json', headers: { compression: 'application/x-nope' } }, /./],
      [{ status: 'SUCCESS' }, {}, /task_id/],
      [{ task_id: 'x', status: 5 }, {}, /status/],
      [[1, 2], {}, /array/],
    ];
    for (const [body, opts, re] of cases) {
      const id = trackedId();
      await rawPublish(b, id, body, opts);
      const e1 = await b.getTaskMeta(id).catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(DecodeError);
      expect((e1 as Error).message).toContain(id);
      expect((e1 as Error).message).toMatch(re);
      const e2 = await b.waitFor(id, { timeout: 5000 }).catch((e: unknown) => e);
      expect(e2).toBeInstanceOf(DecodeError);
      // Nothing was acked away.
      expect(await queueDepth(b, id)).toBe(1);
    }
    const id = trackedId();
    await rawPublish(b, id, 'x', { contentType: 'application/x-python-serialize' });
    await expect(b.getTaskMeta(id)).rejects.toBeInstanceOf(ContentDisallowedError);
    // The backend keeps working.
    const ok = trackedId();
    await b.storeResult(ok, 1, 'SUCCESS');
    expect((await b.waitFor(ok, { timeout: 5000 })).result).toBe(1);
  });

  it('bad input in getMany fails the iteration with a DecodeError and keeps the message', async () => {
    const b = backend({ autoDelete: false });
    const id = trackedId();
    await rawPublish(b, id, '{', { contentType: 'application/json' });
    const err = await (async () => {
      for await (const _ of b.getMany([id], { timeout: 5000 })) void _;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeError);
    expect(await queueDepth(b, id)).toBe(1);
  });

  it('maxBodyBytes limits decoded bodies (and what its own stores write)', async () => {
    const b = backend({ maxBodyBytes: 100 });
    const id = trackedId();
    await expect(b.storeResult(id, ['x'.repeat(500)], 'SUCCESS')).rejects.toBeInstanceOf(EncodeError);
    await backend().storeResult(id, 'x'.repeat(500), 'SUCCESS');
    await expect(b.getTaskMeta(id)).rejects.toBeInstanceOf(DecodeError);
  });

  it('settings by Celery names, camelCase wins, the accept set includes the serializer', () => {
    const b = backend({
      settings: { CELERY_RESULT_SERIALIZER: 'msgpack', result_expires: 60, result_persistent: false },
      persistent: true,
    });
    expect(b.serializer).toBe('msgpack');
    expect(b.accept).toContain('msgpack');
    expect(b.expires).toBe(60);
    expect(b.persistent).toBe(true);
    expect(b.Queue.name).toBe('NoCacheQueue');
    expect(new b.Exchange('x')).toBeInstanceOf(Exchange);
    expect(new b.Queue('q')).toBeInstanceOf(Queue);
  });
});
