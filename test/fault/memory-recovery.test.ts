/**
 * Backend-level recovery on the embedded broker: `MemoryBroker.disconnectAll()` (every
 * connection closes with CONNECTION_FORCED, as a lost socket would) in the middle of a
 * getMany, a burst of stores, and a waitFor. The memory broker applies RabbitMQ's rules:
 * unacked messages go back to their queues, and an auto-delete queue that loses its last
 * consumer is deleted with whatever it held.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import type { TaskMeta } from '../../src/celery/backend-types.js';
import { CeleryAmqpError, TimeoutError } from '../../src/errors.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';
import { backendOn } from './helpers.js';

/** memory:// reconnects in-process, so its policy is ten times quicker than the RabbitMQ suites' FAST. */
const FAST_MEMORY = { intervalStart: 10, intervalStep: 10, intervalMax: 50 };
const broker = MemoryBroker.get('localhost');
const cleanups = cleanupStack();

afterEach(() => cleanups.run());

const ids = (n: number): string[] => Array.from({ length: n }, () => newTaskId());

/** A backend on its own memory:// Connection that reconnects quickly. */
function backend(exchange: string, opts: AMQPBackendOptions = {}): AMQPBackend {
  return backendOn(
    'memory://',
    exchange,
    { retryPolicy: FAST_MEMORY },
    {
      persistent: false,
      retryPolicy: { maxRetries: 40, intervalStart: 0, intervalStep: 10, intervalMax: 50 },
      ...opts,
    },
    cleanups,
  );
}

/** Stores `taskIds` in batches of 50 and cuts every connection once, after `cutAfter` stores. */
async function storeWithCut(
  writer: AMQPBackend,
  taskIds: readonly string[],
  cutAfter: number,
): Promise<void> {
  for (let i = 0; i < taskIds.length; i += 50) {
    if (i === cutAfter) broker.disconnectAll('fault test');
    await Promise.all(taskIds.slice(i, i + 50).map((id, j) => writer.storeResult(id, i + j, 'SUCCESS')));
  }
}

describe('backend recovery on memory://', () => {
  it('getMany of 1,000 with autoDelete false and acked consumption: a cut mid-stream loses and repeats nothing', async () => {
    const exchange = uid('mgm-ex');
    const reader = backend(exchange, { autoDelete: false });
    const writer = backend(exchange, { autoDelete: false });
    const taskIds = ids(1000);
    let cuts = 0;
    reader.connection.on('disconnect', () => (cuts += 1));
    const seen: string[] = [];
    const collecting = (async () => {
      for await (const [id, meta] of reader.getMany(taskIds, { timeout: 60_000, noAck: false })) {
        expect(meta.status).toBe('SUCCESS');
        seen.push(id);
      }
    })();
    await storeWithCut(writer, taskIds, 500);
    await collecting;
    expect(cuts).toBe(1);
    expect(seen.length).toBe(1000);
    expect(new Set(seen)).toEqual(new Set(taskIds));
  });

  it('getMany of 1,000 with the defaults (auto-delete, no_ack): nothing twice; what the cut loses is reported typed', async () => {
    const exchange = uid('mgd-ex');
    const reader = backend(exchange);
    const writer = backend(exchange);
    const taskIds = ids(1000);
    const seen: string[] = [];
    const collecting = (async () => {
      for await (const [id] of reader.getMany(taskIds, { timeout: 5000 })) seen.push(id);
    })().then(
      () => undefined,
      (err: unknown) => err,
    );
    await storeWithCut(writer, taskIds, 500);
    const outcome = await collecting;
    // Duplicates are never acceptable; losses are the documented auto-delete trap: results
    // delivered but not yet acked when the consumer went are deleted with their queue.
    expect(new Set(seen).size).toBe(seen.length);
    const lost = 1000 - seen.length;
    console.info(
      `[memory default getMany] ${seen.length}/1000 delivered, ${lost} lost to the auto-delete trap`,
    );
    if (lost === 0) expect(outcome).toBeUndefined();
    else {
      expect(outcome).toBeInstanceOf(TimeoutError);
      expect((outcome as Error).message).toContain(`${lost} of 1000 results not ready`);
    }
  });

  it('a burst of 600 stores cut twice: each resolves or rejects typed, every resolved one is readable', async () => {
    const exchange = uid('mbs-ex');
    const writer = backend(exchange, { autoDelete: false });
    const reader = backend(exchange, { autoDelete: false });
    const taskIds = ids(600);
    await writer.connection.connect();
    const outcomes = taskIds.map((id, i) =>
      writer.storeResult(id, { i }, 'SUCCESS').then(
        () => 'ok' as const,
        (err: unknown) => err,
      ),
    );
    // Mid-burst: once while the first stores are in flight, once after the reconnect.
    await new Promise((r) => setImmediate(r));
    broker.disconnectAll('burst 1');
    await waitUntil(() => writer.connection.connected, { what: 'writer reconnected', timeout: 20_000 });
    broker.disconnectAll('burst 2');
    const settled = await Promise.all(outcomes);
    const failures = settled.filter((o) => o !== 'ok');
    for (const f of failures) expect(f).toBeInstanceOf(CeleryAmqpError);
    const stored = taskIds.filter((_, i) => settled[i] === 'ok');
    console.info(`[memory store burst] ${stored.length}/600 resolved, ${failures.length} typed rejections`);
    // 40 retries outlast two cuts.
    expect(stored.length).toBe(600);
    const metas = await Promise.all(stored.map((id) => reader.getTaskMeta(id)));
    expect(metas.filter((m: TaskMeta) => m.status !== 'SUCCESS')).toEqual([]);
    expect(metas.map((m) => (m.result as { i: number }).i)).toEqual(stored.map((id) => taskIds.indexOf(id)));
  });

  it.each([true, false])(
    'waitFor (autoDelete %s) completes after a cut with the result published after it',
    async (autoDelete) => {
      const exchange = uid('mwf-ex');
      const reader = backend(exchange, { autoDelete });
      const writer = backend(exchange, { autoDelete });
      const [id] = ids(1) as [string];
      const rk = reader.rkey(id);
      const waiting = reader.waitFor(id, { timeout: 30_000 });
      await waitUntil(() => broker.queueInfo('/', rk)?.consumerCount === 1, {
        what: 'the wait consuming',
        timeout: 20_000,
      });
      const generation = reader.connection.generation;
      broker.disconnectAll('mid-wait');
      // With auto-delete the queue went with its consumer; without, it stays.
      expect(broker.queueInfo('/', rk) === undefined).toBe(autoDelete);
      await writer.storeResult(id, 'after the cut', 'SUCCESS');
      const meta = await waiting;
      expect(meta.result).toBe('after the cut');
      expect(reader.connection.generation).toBe(generation + 1);
      await waitUntil(() => (broker.queueInfo('/', rk)?.consumerCount ?? 0) === 0, {
        what: 'the wait consumer gone',
        timeout: 20_000,
      });
    },
  );
});
