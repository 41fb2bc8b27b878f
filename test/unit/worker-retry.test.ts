/**
 * Retries on memory://: `ctx.retry()` sends the task again with retries + 1 (same id,
 * reply_to and correlation_id), stores RETRY first, and fails with MaxRetriesExceededError
 * (or the given exc) past the limit; autoretryFor with backoff does it by itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TaskError } from '../../src/celery/exceptions.js';
import { MaxRetriesExceededError, Retry } from '../../src/celery/worker.js';
import type { TaskInfo } from '../../src/celery/worker.js';
import { cleanupStack, waitUntil } from '../fixture.js';
import { recordStores, send, startWorker } from '../worker-fixture.js';

describe('Worker retries (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('ctx.retry() twice: RETRY, RETRY, then SUCCESS with retries == 2, same id and reply path', async () => {
    const seen: Array<{ retries: number; id: string; corr: string | null; replyTo: string | null }> = [];
    const { client, server, worker } = await startWorker(cleanups, {
      flaky: (_a, _k, ctx) => {
        seen.push({
          retries: ctx.retries,
          id: ctx.id,
          corr: ctx.message.correlationId,
          replyTo: ctx.message.replyTo,
        });
        if (ctx.retries < 2) return ctx.retry({ countdown: 0.01, exc: new TypeError(`try ${ctx.retries}`) });
        return `done after ${ctx.retries}`;
      },
    });
    const stored = recordStores(server);
    const retried: Retry[] = [];
    worker.on('task-retried', (_t, reason) => retried.push(reason));
    const r = await send(client, 'flaky');
    expect(await r.get()).toBe('done after 2');
    expect(seen.map((s) => s.retries)).toEqual([0, 1, 2]);
    expect(new Set(seen.map((s) => s.id))).toEqual(new Set([r.id]));
    expect(new Set(seen.map((s) => s.corr))).toEqual(new Set([r.id]));
    expect(new Set(seen.map((s) => s.replyTo))).toEqual(new Set([client.oid]));
    expect(stored.map((s) => s.status)).toEqual(['RETRY', 'RETRY', 'SUCCESS']);
    expect(stored[0]?.result).toBeInstanceOf(TypeError);
    expect(retried).toHaveLength(2);
    expect(retried[0]).toBeInstanceOf(Retry);
    expect(retried[0]?.message).toBe("Retry in 0.01s: TypeError('try 0')");
    expect(worker.counters.retried).toBe(2);
  });

  it('past maxRetries: MaxRetriesExceededError is stored as the FAILURE', async () => {
    let runs = 0;
    const { client } = await startWorker(cleanups, {
      always: {
        maxRetries: 1,
        handler: (_a, _k, ctx) => {
          runs++;
          return ctx.retry({ countdown: 0 });
        },
      },
    });
    const err = await (await send(client, 'always', [1])).error();
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toMatchObject({ excType: 'MaxRetriesExceededError', excModule: 'celery.exceptions' });
    expect(String((err as TaskError).excArgs[0])).toMatch(
      /^Can't retry always\[.*\] args:\[1\] kwargs:\{\}$/,
    );
    expect(runs).toBe(2);
  });

  it('maxRetries: null retries without a limit', async () => {
    const { client } = await startWorker(cleanups, {
      stubborn: {
        maxRetries: null,
        handler: (_a, _k, ctx) => (ctx.retries < 5 ? ctx.retry({ countdown: 0 }) : ctx.retries),
      },
    });
    expect(await (await send(client, 'stubborn')).get()).toBe(5);
  });

  it('past the limit with exc given, the task fails with that exc', async () => {
    const { client } = await startWorker(cleanups, {
      once: (_a, _k, ctx) => ctx.retry({ countdown: 0, maxRetries: 0, exc: new RangeError('gave up') }),
    });
    const err = await (await send(client, 'once')).error();
    expect(err).toMatchObject({ excType: 'ValueError', excArgs: ['gave up'] });
  });

  it('the retry carries new args and an eta countdown seconds away', async () => {
    const received: TaskInfo[] = [];
    const { client, worker } = await startWorker(cleanups, {
      sum: ([a, b], _k, ctx) =>
        ctx.retries === 0 ? ctx.retry({ args: [10, 20], countdown: 0.3 }) : Number(a) + Number(b),
    });
    worker.on('task-received', (t) => received.push({ ...t }));
    const before = Date.now();
    expect(await (await send(client, 'sum', [1, 2])).get()).toBe(30);
    expect(received).toHaveLength(2);
    expect(received[1]?.retries).toBe(1);
    expect(received[1]?.eta).toBeGreaterThanOrEqual(before + 300);
    expect(Date.now() - before).toBeGreaterThanOrEqual(300);
  });

  it('without countdown or eta the retry waits defaultRetryDelay seconds', async () => {
    const received: TaskInfo[] = [];
    const { client, worker } = await startWorker(cleanups, {
      later: { defaultRetryDelay: 3600, handler: (_a, _k, ctx) => ctx.retry() },
    });
    worker.on('task-received', (t) => received.push({ ...t }));
    const before = Date.now();
    await send(client, 'later');
    await waitUntil(() => worker.held === 1, { what: 'the retry held for its eta' });
    expect(received[1]?.eta).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(received[1]?.eta).toBeLessThan(before + 3_700_000);
  });

  it('autoretryFor retries the listed errors by itself, with exponential backoff, then fails with the error', async () => {
    const received: TaskInfo[] = [];
    let runs = 0;
    const { client, server, worker } = await startWorker(cleanups, {
      fetch: {
        autoretryFor: ['ConnectionError', TypeError],
        retryBackoff: 0.05,
        retryJitter: false,
        maxRetries: 2,
        handler: () => {
          runs++;
          const e = new Error('refused');
          e.name = 'ConnectionError';
          throw e;
        },
      },
    });
    const stored = recordStores(server);
    worker.on('task-received', (t) => received.push({ ...t }));
    const err = await (await send(client, 'fetch')).error();
    expect(err).toMatchObject({ excType: 'ConnectionError', excArgs: ['refused'] });
    expect(runs).toBe(3);
    expect(stored.map((s) => s.status)).toEqual(['RETRY', 'RETRY', 'FAILURE']);
    // Backoff 0.05 * 2**retries seconds: 50 ms, then 100 ms.
    const gaps = received.slice(1).map((t, i) => (t.eta ?? 0) - (received[i]?.timeStart ?? 0) * 1000);
    expect(gaps[0]).toBeGreaterThanOrEqual(45);
    expect(gaps[1]).toBeGreaterThanOrEqual(95);
  });

  it('an error not in autoretryFor fails at once', async () => {
    let runs = 0;
    const { client } = await startWorker(cleanups, {
      strict: {
        autoretryFor: [TypeError],
        handler: () => {
          runs++;
          throw new RangeError('no');
        },
      },
    });
    expect(await (await send(client, 'strict')).error()).toMatchObject({ excType: 'ValueError' });
    expect(runs).toBe(1);
  });

  it('backoff: factor * 2**retries capped by retryBackoffMax; full jitter stays within it', async () => {
    const { worker } = await startWorker(cleanups, {
      t: { handler: () => 1, retryBackoff: true, retryBackoffMax: 5, retryJitter: false },
      j: { handler: () => 1, retryBackoff: 2, retryJitter: true },
    });
    const t = worker.tasks.get('t');
    expect([0, 1, 2, 3, 4].map((r) => t?.backoff(r))).toEqual([1, 2, 4, 5, 5]);
    const j = worker.tasks.get('j');
    expect(j?.backoff(3, () => 0.999)).toBe(16);
    expect(j?.backoff(3, () => 0)).toBe(0);
  });

  it('a retry whose publish fails stores FAILURE with the publish error', async () => {
    const { client, server } = await startWorker(cleanups, {
      r: (_a, _k, ctx) => ctx.retry({ countdown: 0 }),
    });
    const stored = recordStores(server);
    // Only the retry publisher's channel fails to open (the result store keeps working): it is
    // the one channel the worker opens without recovered declarations.
    const conn = server.connection;
    const channel = conn.channel.bind(conn);
    conn.channel = (options) =>
      options?.recoverDeclarations === false
        ? Promise.reject(new Error('no channel for the retry'))
        : channel(options);
    const err = await (await send(client, 'r')).error();
    conn.channel = channel;
    expect(err).toMatchObject({ excArgs: ['no channel for the retry'] });
    expect(stored.map((s) => s.status)).toEqual(['RETRY', 'FAILURE']);
  });

  it('MaxRetriesExceededError is a TaskError of celery.exceptions', () => {
    const e = new MaxRetriesExceededError('x');
    expect(e).toBeInstanceOf(TaskError);
    expect(e.pythonType).toBe('celery.exceptions.MaxRetriesExceededError');
  });
});
