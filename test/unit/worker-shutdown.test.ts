/**
 * Warm and cold shutdown on memory://: what finishes, what goes back to the queue, and that
 * nothing is lost.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../src/kombu/connection.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { recordStores, send, startWorker } from '../worker-fixture.js';

const URL = 'memory://';

/** Messages ready in a queue, asked on a fresh connection. */
async function ready(queue: string): Promise<number | undefined> {
  const conn = new Connection(URL);
  try {
    const ch = await conn.channel();
    return (await ch.declareQueue({ queue: queue, passive: true }))?.messageCount;
  } finally {
    await conn.close();
  }
}

describe('Worker shutdown (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('warm: running tasks finish and are stored; held, waiting and unstarted tasks go back to the queue', async () => {
    const gates: Array<() => void> = [];
    const { queue, client, server, worker } = await startWorker(
      cleanups,
      { hold: () => new Promise<string>((resolve) => gates.push(() => resolve('done'))) },
      { concurrency: 2 },
    );
    const stored = recordStores(server);
    const running = await Promise.all([send(client, 'hold'), send(client, 'hold')]);
    const waiting = await send(client, 'hold');
    const held = await send(client, 'hold', [], {}, { countdown: 60 });
    await waitUntil(() => worker.active === 2 && worker.reserved === 1 && worker.held === 1);
    const shutdown: string[] = [];
    worker.on('shutdown', (how) => shutdown.push(how));
    const closed = worker.close();
    await waitUntil(() => shutdown.length === 1);
    // The not-started ones are back at once, while the running ones still run.
    await waitUntil(async () => (await ready(queue)) === 2, { what: 'two messages back in the queue' });
    expect(worker.active).toBe(2);
    gates.forEach((g) => g());
    await closed;
    expect(shutdown).toEqual(['warm']);
    expect(await Promise.all(running.map((r) => r.get()))).toEqual(['done', 'done']);
    expect(stored.map((s) => s.status)).toEqual(['SUCCESS', 'SUCCESS']);
    expect(await ready(queue)).toBe(2);
    expect([waiting.id, held.id]).toHaveLength(2);
  });

  it("a task's slot goes to the next one while its result waits for the broker; a warm close waits for that store", async () => {
    const { queue, client, server, worker } = await startWorker(
      cleanups,
      { echo: (args: unknown[]) => args[0] },
      { concurrency: 1 },
    );
    // The first store waits on a gate, as a confirm that takes long would.
    const backend = server.backend;
    const store = backend.storeResult.bind(backend);
    let gate: (() => void) | undefined;
    const gated = new Promise<void>((resolve) => (gate = resolve));
    let first = true;
    backend.storeResult = async (id, result, status, options) => {
      if (first) {
        first = false;
        await gated;
      }
      return store(id, result, status, options);
    };
    const a = await send(client, 'echo', ['a']);
    const b = await send(client, 'echo', ['b']);
    // With one slot, b runs and is stored while a's store is still held.
    expect(await b.get(5000)).toBe('b');
    expect(worker.active).toBe(0);
    let closed = false;
    const closing = worker.close().then(() => (closed = true));
    await waitUntil(() => worker.counters.succeeded === 1);
    expect(closed).toBe(false);
    gate?.();
    await closing;
    expect(await a.get(5000)).toBe('a');
    expect(worker.counters.succeeded).toBe(2);
    expect(await ready(queue)).toBe(0);
  });

  it('a second close() is cold: running acks-late tasks go back to the queue, their signal aborted', async () => {
    const reasons: unknown[] = [];
    const { queue, client, worker } = await startWorker(cleanups, {
      hang: (_a, _k, ctx) => {
        ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
        return new Promise(() => undefined);
      },
    });
    await send(client, 'hang');
    await send(client, 'hang');
    await waitUntil(() => worker.active === 2);
    const shutdown: string[] = [];
    worker.on('shutdown', (how) => shutdown.push(how));
    const warm = worker.close();
    await waitUntil(() => shutdown.length === 1);
    const cold = worker.close();
    await Promise.all([warm, cold]);
    expect(shutdown).toEqual(['warm', 'cold']);
    expect(reasons).toHaveLength(2);
    expect(await ready(queue)).toBe(2);
  });

  it('the warm phase ends at its timeout, then cold', async () => {
    const { queue, client, worker } = await startWorker(cleanups, {
      hang: () => new Promise(() => undefined),
    });
    await send(client, 'hang');
    await waitUntil(() => worker.active === 1);
    await worker.close({ timeout: 50 });
    expect(await ready(queue)).toBe(1);
  });

  it('rejectOnWorkerLost: false stores WorkerLostError for a task a cold shutdown abandons', async () => {
    const { queue, client, server, worker } = await startWorker(
      cleanups,
      { hang: () => new Promise(() => undefined) },
      { rejectOnWorkerLost: false },
    );
    const stored = recordStores(server);
    const r = await send(client, 'hang');
    await waitUntil(() => worker.active === 1);
    await worker.close({ cold: true });
    expect(stored.map((s) => s.status)).toEqual(['FAILURE']);
    expect(await r.error()).toMatchObject({ excType: 'WorkerLostError', excModule: 'billiard.exceptions' });
    expect(await ready(queue)).toBe(0);
  });

  it("a listener that throws is reported as the worker's 'error'; the worker keeps serving", async () => {
    const { client, worker } = await startWorker(cleanups, { t: ([x]) => x });
    const errors: Error[] = [];
    worker.on('error', (err) => errors.push(err));
    worker.once('task-succeeded', () => {
      throw new Error('listener bug');
    });
    expect(await (await send(client, 't', [1])).get()).toBe(1);
    await waitUntil(() => errors.length === 1);
    expect(errors[0]?.message).toBe('listener bug');
    expect(await (await send(client, 't', [2])).get()).toBe(2);
  });

  it('a start that fails half-way (its mailbox queue is locked) leaves nothing consuming', async () => {
    const hostname = `${uid('twin')}@test`;
    const settings = { control_queue_exclusive: true };
    await startWorker(cleanups, {}, { remoteControl: true, hostname, settings });
    const queue = uid('twinq');
    const ran: unknown[] = [];
    const twin = startWorker(
      cleanups,
      { t: () => ran.push(1) },
      { queue, remoteControl: true, hostname, settings },
    );
    await expect(twin).rejects.toMatchObject({ code: 'RESOURCE_LOCKED' });
    // Nobody consumes the twin's task queue any more.
    const conn = new Connection(URL);
    cleanups.push(() => conn.close());
    expect((await (await conn.channel()).declareQueue({ queue: queue, passive: true }))?.consumerCount).toBe(
      0,
    );
    expect(ran).toEqual([]);
  });

  it('a message that arrives while closing goes back to the queue', async () => {
    const { queue, client, worker } = await startWorker(cleanups, { t: () => 1 });
    await worker.close();
    await send(client, 't');
    expect(await ready(queue)).toBe(1);
    expect(worker.counters.received).toBe(0);
  });
});
