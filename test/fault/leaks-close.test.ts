/**
 * What opening and closing leaves behind, on memory:// and RabbitMQ: Connections, AMQP
 * backends and rpc:// apps opened and closed 50 times; close() while operations are in
 * flight; an AbortSignal fired in the middle of a getMany. Handles are compared with
 * `process.getActiveResourcesInfo()`, consumers with the broker's own view of the queues.
 */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { AbortError, CeleryAmqpError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { transports } from '../conformance/transports.js';
import type { TransportFixture } from '../conformance/transports.js';
import { cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';
import { listTable } from '../rabbitmq-admin.js';

const ids = (n: number): string[] => Array.from({ length: n }, () => newTaskId());
const KINDS = ['Timeout', 'TCPSocketWrap', 'Immediate', 'TCPWRAP'];

/** Counts of the active resources that keep the process alive, by type. */
function handles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Listeners on `process`, summed over every event (a library must not add any that stay). */
function processListeners(): number {
  return process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0);
}

/** Resource kinds of which there are more now than in `before`, once sockets had time to close. */
async function extraHandles(before: Map<string, number>): Promise<string[]> {
  const extra = (): string[] => {
    const now = handles();
    return KINDS.filter((k) => (now.get(k) ?? 0) > (before.get(k) ?? 0)).map(
      (k) => `${k}: ${before.get(k) ?? 0} -> ${now.get(k) ?? 0}`,
    );
  };
  // A socket finishes closing on a later turn of the event loop; a leaked one never does.
  await waitUntil(() => extra().length === 0, {
    what: 'handles back to where they were',
    timeout: 5000,
  }).catch(() => undefined);
  return extra();
}

/** Consumer counts of the named queues, as the broker sees them (absent queues are left out). */
async function consumerCounts(t: TransportFixture, names: readonly string[]): Promise<Map<string, number>> {
  const wanted = new Set(names);
  const out = new Map<string, number>();
  if (t.kind === 'memory') {
    for (const n of names) {
      const info = MemoryBroker.get('localhost').queueInfo('/', n);
      if (info !== undefined) out.set(n, info.consumerCount);
    }
    return out;
  }
  for (const [name, consumers] of await listTable('queues', '/', ['name', 'consumers'])) {
    if (name !== undefined && wanted.has(name)) out.set(name, Number(consumers));
  }
  return out;
}

describe.each(transports)('open/close leaks on $name', (t) => {
  const cleanups = cleanupStack();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled);
    await cleanups.run();
  });

  it('a Connection used and closed 50 times leaves no handle, timer or listener', async () => {
    const before = handles();
    const listeners = processListeners();
    for (let i = 0; i < 50; i += 1) {
      const conn = new Connection(t.url, { heartbeat: 10 });
      const ch = await conn.channel();
      const q = uid('leak-q');
      await ch.declareQueue({ queue: q, autoDelete: true, arguments: { 'x-expires': 10_000 } });
      await ch.deleteQueue({ queue: q });
      await conn.close();
      await conn.close(); // idempotent
      expect(conn.eventNames().reduce((n, e) => n + conn.listenerCount(e), 0)).toBe(0);
    }
    expect(await extraHandles(before)).toEqual([]);
    expect(processListeners()).toBe(listeners);
  });

  it('an AMQPBackend that stores, polls, waits and gets many, closed 50 times, leaves nothing behind', async () => {
    const before = handles();
    const listeners = processListeners();
    const exchange = uid('leak-ex');
    for (let i = 0; i < 50; i += 1) {
      const b = new AMQPBackend({ connection: t.url, exchange, persistent: false, expires: 10 });
      const [a, c, d] = ids(3) as [string, string, string];
      const waiting = b.waitFor(a, { timeout: 10_000, onInterval: () => undefined });
      await b.storeResult(a, i, 'SUCCESS');
      await b.storeResult(c, i, 'SUCCESS');
      expect((await waiting).result).toBe(i);
      expect((await b.getTaskMeta(c)).result).toBe(i);
      const iter = b.getMany([d], { timeout: 10_000 });
      const first = iter.next();
      await b.storeResult(d, i, 'SUCCESS');
      expect((await first).value).toEqual([d, expect.objectContaining({ result: i })]);
      await b.forget(c);
      await b.close();
      await b.close(); // idempotent
      expect(getEventListeners(b.closingSignal, 'abort')).toHaveLength(0);
    }
    expect(await extraHandles(before)).toEqual([]);
    expect(processListeners()).toBe(listeners);
  });

  it('an rpc:// app that sends a task, opened and closed 50 times, leaves nothing behind', async () => {
    const queue = uid('leak-rpc');
    // The task queue is durable: dropped (with its exchange) through the connection of one more app.
    cleanups.push(async () => {
      const app = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
      const ch = await app.connection.channel();
      await Promise.allSettled([ch.deleteQueue({ queue }), ch.deleteExchange({ exchange: queue })]);
      await app.close();
    });
    const before = handles();
    const listeners = processListeners();
    for (let i = 0; i < 50; i += 1) {
      const app = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
      const r = await app.sendTask('leak.noop', [i]);
      // Nobody runs the task: the wait is ended by close(), with a typed error.
      const pending = r.get({ timeout: 30_000 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      await app.close();
      await app.close(); // idempotent
      expect(await pending).toBeInstanceOf(CeleryAmqpError);
    }
    expect(await extraHandles(before)).toEqual([]);
    expect(processListeners()).toBe(listeners);
    expect(unhandled).toEqual([]);
  });

  it('close() during in-flight waits, getMany, polls and stores: each rejects typed, none unhandled', async () => {
    const exchange = uid('leak-inflight');
    const b = new AMQPBackend({ connection: t.url, exchange, persistent: false, expires: 10 });
    const writer = new AMQPBackend({ connection: t.url, exchange, persistent: false, expires: 10 });
    cleanups.push(() => writer.close());
    const settle = (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        () => 'ok',
        (err: unknown) => err,
      );
    const waitIds = ids(20);
    const waits = waitIds.map((id) => settle(b.waitFor(id, { timeout: 30_000 })));
    const many = settle(
      (async () => {
        for await (const _ of b.getMany(ids(500), { timeout: 30_000 })) void _;
      })(),
    );
    await waitUntil(() => b.connection.connected, { what: 'connected', timeout: 20_000 });
    // Some in flight for real: a few results arrive while the rest of the calls are pending.
    await Promise.all(waitIds.slice(0, 5).map((id) => writer.storeResult(id, 1, 'SUCCESS')));
    const stores = ids(100).map((id) => settle(b.storeResult(id, 2, 'SUCCESS')));
    const polls = ids(20).map((id) => settle(b.getTaskMeta(id)));
    const closes = [b.close(), b.close()];
    await Promise.all(closes);
    const after = [settle(b.storeResult(newTaskId(), 3, 'SUCCESS')), settle(b.waitFor(newTaskId()))];
    const outcomes = await Promise.all([...waits, many, ...stores, ...polls, ...after]);
    const untyped = outcomes.filter((o) => o !== 'ok' && !(o instanceof CeleryAmqpError));
    expect(untyped).toEqual([]);
    // The waits without a result, the getMany and the calls after close cannot have succeeded.
    for (const o of [...(await Promise.all(waits.slice(5))), await many, ...(await Promise.all(after))]) {
      expect(o).toBeInstanceOf(CeleryAmqpError);
    }
    const rejected = outcomes.filter((o) => o !== 'ok').length;
    console.info(
      `[close in flight ${t.kind}] ${outcomes.length - rejected} resolved, ${rejected} typed rejections`,
    );
    // Node reports a rejection left unhandled once the microtasks of its turn have run: every
    // promise settled above has been reported (or not) by the next turn of the event loop.
    await new Promise((r) => setImmediate(r));
    expect(unhandled).toEqual([]);
  });

  it('one AbortSignal shared by 50 waits, 20 stores and a getMany holds one listener and raises no MaxListeners warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    cleanups.push(async () => process.off('warning', onWarning));
    const exchange = uid('leak-shared-signal');
    const b = new AMQPBackend({ connection: t.url, exchange, persistent: false, expires: 10 });
    cleanups.push(() => b.close());
    const controller = new AbortController();
    const { signal } = controller;
    const settle = (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        () => 'ok',
        (err: unknown) => err,
      );
    await b.connection.connect();
    const waits = ids(50).map((id) => settle(b.waitFor(id, { timeout: 30_000, signal })));
    const many = settle(
      (async () => {
        for await (const _ of b.getMany(ids(100), { timeout: 30_000, signal })) void _;
      })(),
    );
    await waitUntil(() => getEventListeners(signal, 'abort').length > 0, {
      what: 'the waits watching the signal',
      timeout: 20_000,
    });
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    const stores = ids(20).map((id) => settle(b.storeResult(id, 1, 'SUCCESS', { signal })));
    await Promise.all(stores);
    controller.abort();
    const outcomes = await Promise.all([...waits, many]);
    expect(outcomes.filter((o) => !(o instanceof AbortError))).toEqual([]);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    // Warnings are emitted on process.nextTick: all of them are out by the next turn of the loop.
    await new Promise((r) => setImmediate(r));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('an AbortSignal fired mid-getMany rejects it with AbortError and cancels every consumer', async () => {
    const exchange = uid('leak-abort');
    // autoDelete false, so the queues outlive their consumers and their counts can be read.
    const opts = { connection: t.url, exchange, persistent: false, autoDelete: false, expires: 15 };
    const b = new AMQPBackend(opts);
    const writer = new AMQPBackend(opts);
    cleanups.push(() => b.close());
    cleanups.push(() => writer.close());
    const taskIds = ids(200);
    const names = taskIds.map((id) => b.rkey(id));
    cleanups.push(async () => {
      for (const id of taskIds) await writer.forget(id);
    });
    const controller = new AbortController();
    const seen: string[] = [];
    const collecting = (async () => {
      for await (const [id] of b.getMany(taskIds, { timeout: 60_000, signal: controller.signal }))
        seen.push(id);
    })().then(
      () => undefined,
      (err: unknown) => err,
    );
    await Promise.all(taskIds.slice(0, 50).map((id) => writer.storeResult(id, 1, 'SUCCESS')));
    await waitUntil(() => seen.length === 50, { what: 'the first 50 results', timeout: 20_000 });
    // Every queue still awaited has its consumer before the abort (getMany sets them up in
    // batches: the first results can arrive before the last consumers are up).
    const duringCounts = await waitUntil(
      async () => {
        const counts = await consumerCounts(t, names.slice(50));
        return [...counts.values()].filter((n) => n === 1).length === 150 && counts;
      },
      { what: 'a consumer on each of the 150 queues still awaited', interval: 200, timeout: 20_000 },
    );
    controller.abort();
    expect(await collecting).toBeInstanceOf(AbortError);
    const afterCounts = await consumerCounts(t, names);
    console.info(
      `[abort getMany ${t.kind}] consumers before abort ${[...duringCounts.values()].reduce((a, n) => a + n, 0)}, after ${[...afterCounts.values()].reduce((a, n) => a + n, 0)}`,
    );
    expect([...afterCounts.entries()].filter(([, n]) => n !== 0)).toEqual([]);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});
