/**
 * Load and leak detection for the AMQP result backend, on memory:// and RabbitMQ: hundreds
 * of concurrent waits and a getMany of 10,000 ids, with memory, listener and handle counts
 * checked. The bounds are leak detectors, not timers: nothing here asserts on speed.
 */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import type { TaskMeta } from '../../src/celery/backend-types.js';
import { Connection } from '../../src/kombu/connection.js';
import { transports } from '../conformance/transports.js';
import { cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';

const ids = (n: number): string[] => Array.from({ length: n }, () => newTaskId());

/** Fisher-Yates, so results arrive in an order unrelated to the order of the waits. */
function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Counts of the active resources that keep the process alive, by type. */
function handles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Every listener a Connection's EventEmitter holds, summed over its events. */
function emitterListeners(e: NodeJS.EventEmitter): number {
  return e.eventNames().reduce((n, name) => n + e.listenerCount(name), 0);
}

/** Samples heapUsed and rss while a test runs; the peak is what a leak would inflate. */
class MemorySampler {
  readonly baseHeap = process.memoryUsage().heapUsed;
  readonly baseRss = process.memoryUsage().rss;
  peakHeap = this.baseHeap;
  peakRss = this.baseRss;
  readonly #timer = setInterval(() => this.sample(), 50);
  sample(): void {
    const m = process.memoryUsage();
    this.peakHeap = Math.max(this.peakHeap, m.heapUsed);
    this.peakRss = Math.max(this.peakRss, m.rss);
  }
  stop(): void {
    this.sample();
    clearInterval(this.#timer);
  }
}

const MB = 1024 * 1024;

describe.each(transports)('backend load on $name', (t) => {
  const cleanups = cleanupStack();
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  beforeEach(() => {
    warnings.length = 0;
    process.on('warning', onWarning);
  });
  afterEach(async () => {
    process.off('warning', onWarning);
    await cleanups.run();
  });

  /** Result queues are transient and expire soon on RabbitMQ, whatever happens to the test. */
  function backend(opts: AMQPBackendOptions = {}): AMQPBackend {
    const b = new AMQPBackend({
      connection: t.url,
      exchange: uid('load-ex'),
      persistent: false,
      expires: 60,
      ...opts,
    });
    cleanups.push(() => b.close());
    return b;
  }

  const maxListenerWarnings = (): Error[] => warnings.filter((w) => w.name === 'MaxListenersExceededWarning');

  it('200 concurrent waitFor and a getMany of 10,000, stored afterwards in random order, all resolve in bounded memory', async () => {
    const reader = backend();
    const writer = new AMQPBackend({
      connection: t.url,
      exchange: reader.exchange.name,
      persistent: false,
      expires: 60,
    });
    cleanups.push(() => writer.close());
    const mem = new MemorySampler();
    try {
      const waitIds = ids(200);
      const manyIds = ids(10_000);
      const value = new Map<string, number>([...waitIds, ...manyIds].map((id, i) => [id, i]));
      const waits = waitIds.map((id) => reader.waitFor(id, { timeout: 180_000 }));
      const got = new Map<string, TaskMeta>();
      let duplicates = 0;
      const collecting = (async () => {
        for await (const [id, meta] of reader.getMany(manyIds, { timeout: 180_000 })) {
          if (got.has(id)) duplicates += 1;
          got.set(id, meta);
        }
      })();
      // Stores start only once every wait and the getMany are under way.
      const order = shuffled([...waitIds, ...manyIds]);
      for (let i = 0; i < order.length; i += 500) {
        await Promise.all(
          order.slice(i, i + 500).map((id) => writer.storeResult(id, value.get(id), 'SUCCESS')),
        );
      }
      const metas = await Promise.all(waits);
      await collecting;
      metas.forEach((m, i) => {
        expect(m.task_id).toBe(waitIds[i]);
        expect(m.result).toBe(value.get(waitIds[i] as string));
      });
      expect(duplicates).toBe(0);
      expect(got.size).toBe(10_000);
      const wrong = manyIds.filter((id) => got.get(id)?.result !== value.get(id));
      expect(wrong).toEqual([]);
    } finally {
      mem.stop();
    }
    const heapGrowth = (mem.peakHeap - mem.baseHeap) / MB;
    const rssGrowth = (mem.peakRss - mem.baseRss) / MB;
    console.info(
      `[load ${t.kind}] peak heap ${(mem.peakHeap / MB).toFixed(0)} MB (+${heapGrowth.toFixed(0)}), peak rss ${(mem.peakRss / MB).toFixed(0)} MB (+${rssGrowth.toFixed(0)})`,
    );
    expect(heapGrowth).toBeLessThan(300);
    expect(rssGrowth).toBeLessThan(600);
    expect(maxListenerWarnings()).toEqual([]);
  }, 300_000);

  it('1,000 sequential waitFor and 100 getMany with the same AbortSignal add no lasting listeners', async () => {
    const connection = new Connection(t.url);
    cleanups.push(() => connection.close());
    const b = backend({ connection });
    const w = backend({ connection, exchange: b.exchange.name });
    const controller = new AbortController();
    const { signal } = controller;
    const fastIds = ids(1000);
    await Promise.all(fastIds.map((id, i) => w.storeResult(id, i, 'SUCCESS')));
    await connection.connect();
    const connBase = emitterListeners(connection);
    let maxAbort = 0;
    // The fast path: each result is already there (basic.get).
    for (const [i, id] of fastIds.entries()) {
      const meta = await b.waitFor(id, { signal, timeout: 60_000 });
      expect(meta.result).toBe(i);
      maxAbort = Math.max(maxAbort, getEventListeners(signal, 'abort').length);
    }
    // The slow path: a consumer on a channel of its own, the result stored after the wait began.
    for (const [i, id] of ids(100).entries()) {
      const waiting = b.waitFor(id, { signal, timeout: 60_000 });
      await w.storeResult(id, i, 'SUCCESS');
      // Most likely still in flight here: its one listener may be there, never more.
      maxAbort = Math.max(maxAbort, getEventListeners(signal, 'abort').length);
      expect((await waiting).result).toBe(i);
      maxAbort = Math.max(maxAbort, getEventListeners(signal, 'abort').length);
    }
    for (let round = 0; round < 100; round += 1) {
      const few = ids(3);
      const seen: string[] = [];
      const iter = b.getMany(few, { signal, timeout: 60_000 });
      const first = iter.next();
      await Promise.all(few.map((id) => w.storeResult(id, round, 'SUCCESS')));
      const r = await first;
      if (r.done !== true) seen.push(r.value[0]);
      for await (const [id] of iter) seen.push(id);
      expect(new Set(seen)).toEqual(new Set(few));
      maxAbort = Math.max(maxAbort, getEventListeners(signal, 'abort').length);
    }
    console.info(
      `[listeners ${t.kind}] abort listeners max ${maxAbort}, after ${getEventListeners(signal, 'abort').length}; connection ${connBase} -> ${emitterListeners(connection)}; closingSignal ${getEventListeners(b.closingSignal, 'abort').length}`,
    );
    // A call in progress holds at most one; none is left once they are done.
    expect(maxAbort).toBeLessThanOrEqual(1);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(getEventListeners(b.closingSignal, 'abort')).toHaveLength(0);
    expect(emitterListeners(connection)).toBe(connBase);
    expect(maxListenerWarnings()).toEqual([]);
  }, 300_000);

  it('channels opened by waits do not accumulate listeners, and close() leaves no timer or socket behind', async () => {
    const before = handles();
    const b = new AMQPBackend({
      connection: t.url,
      exchange: uid('load-ex'),
      persistent: false,
      expires: 60,
    });
    const w = new AMQPBackend({
      connection: t.url,
      exchange: b.exchange.name,
      persistent: false,
      expires: 60,
    });
    // Separate ids: a no_ack result goes to one consumer only, so a wait and a getMany on
    // the same id would race for it.
    const some = ids(300);
    const others = ids(300);
    const waits = some.map((id) => b.waitFor(id, { timeout: 60_000, onInterval: () => undefined }));
    const many = (async () => {
      const out: string[] = [];
      for await (const [id] of b.getMany(others, { timeout: 60_000, onInterval: () => undefined }))
        out.push(id);
      return out;
    })();
    // While the waits hold their consumers, the connection's own listeners stay a constant few.
    await waitUntil(() => b.connection.connected, { what: 'reader connected', timeout: 20_000 });
    const during = emitterListeners(b.connection);
    await Promise.all(shuffled([...some, ...others]).map((id, i) => w.storeResult(id, i, 'SUCCESS')));
    await Promise.all(waits);
    expect((await many).length).toBe(300);
    expect(during).toBeLessThan(20);
    expect(emitterListeners(b.connection)).toBeLessThanOrEqual(during);
    await b.close();
    await w.close();
    await b.close(); // idempotent
    // Sockets finish closing on their own turn of the event loop; a leak never does.
    const extra = (): string[] => {
      const now = handles();
      return ['Timeout', 'TCPSocketWrap', 'Immediate'].filter(
        (k) => (now.get(k) ?? 0) > (before.get(k) ?? 0),
      );
    };
    await waitUntil(() => extra().length === 0, {
      what: 'handles back to where they were',
      timeout: 5000,
    }).catch(() => undefined);
    expect(extra()).toEqual([]);
    expect(maxListenerWarnings()).toEqual([]);
  }, 120_000);
});
