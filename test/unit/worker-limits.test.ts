/**
 * Time limits, concurrency, prefetch, acks and rate limits on memory://.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TaskError } from '../../src/celery/exceptions.js';
import { SoftTimeLimitExceeded, TimeLimitExceeded } from '../../src/celery/worker.js';
import { cleanupStack, waitUntil } from '../fixture.js';
import { recordStores, send, startWorker } from '../worker-fixture.js';

/** A promise that never settles: a handler JS cannot stop. */
const forever = (): Promise<never> => new Promise<never>(() => undefined);

/** Resolves when the signal aborts, with its reason. */
const aborted = (signal: AbortSignal): Promise<unknown> =>
  new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));

describe('Worker time limits (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('soft limit from the message: the signal aborts with SoftTimeLimitExceeded, the handler decides', async () => {
    const { client } = await startWorker(cleanups, {
      careful: async (_a, _k, ctx) => {
        const reason = await aborted(ctx.signal);
        return reason instanceof SoftTimeLimitExceeded ? `stopped: ${String(reason.excArgs[0])}` : 'other';
      },
    });
    expect(await (await send(client, 'careful', [], {}, { softTimeLimit: 0.05 })).get()).toBe(
      'stopped: 0.05',
    );
  });

  it('a handler that lets SoftTimeLimitExceeded propagate fails with it', async () => {
    const { client } = await startWorker(cleanups, {
      careless: async (_a, _k, ctx) => {
        throw await aborted(ctx.signal);
      },
    });
    const err = await (await send(client, 'careless', [], {}, { softTimeLimit: 0.05 })).error();
    expect(err).toMatchObject({ excType: 'SoftTimeLimitExceeded', excModule: 'billiard.exceptions' });
  });

  it('hard limit: FAILURE TimeLimitExceeded, the slot freed, the late result dropped, the worker serving', async () => {
    let release: (v: string) => void = () => undefined;
    const { client, server, worker } = await startWorker(
      cleanups,
      {
        hang: (_a, _k, ctx) => {
          ctx.signal.addEventListener('abort', () => undefined);
          return new Promise((resolve) => (release = resolve));
        },
        quick: ([x]) => x,
      },
      { concurrency: 1 },
    );
    const stored = recordStores(server);
    const err = await (await send(client, 'hang', [], {}, { timeLimit: 0.1 })).error();
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toMatchObject({
      excType: 'TimeLimitExceeded',
      excModule: 'billiard.exceptions',
      excArgs: [0.1],
    });
    expect(worker.counters.abandoned).toBe(1);
    // One slot, still held by the hung handler: only a freed slot lets this run.
    expect(await (await send(client, 'quick', ['next'])).get()).toBe('next');
    release('too late');
    await waitUntil(() => worker.counters.abandoned === 0, { what: 'the late result seen and dropped' });
    expect(stored.map((s) => s.status)).toEqual(['FAILURE', 'SUCCESS']);
  });

  it("the task's options give the limits when the message has none; the message's win", async () => {
    const reasons: unknown[] = [];
    const { client } = await startWorker(cleanups, {
      limited: {
        softTimeLimit: 0.05,
        timeLimit: 10,
        handler: async (_a, _k, ctx) => {
          reasons.push(await aborted(ctx.signal));
          return 'ok';
        },
      },
    });
    expect(await (await send(client, 'limited')).get()).toBe('ok');
    expect(reasons[0]).toBeInstanceOf(SoftTimeLimitExceeded);
    const err = await (await send(client, 'limited', [], {}, { timeLimit: 0.02, softTimeLimit: 5 })).error();
    expect(err).toMatchObject({ excType: 'TimeLimitExceeded', excArgs: [0.02] });
  });

  it("the worker's default hard limit applies to every task; the signal reason is TimeLimitExceeded", async () => {
    const reasons: unknown[] = [];
    const { client } = await startWorker(
      cleanups,
      {
        hang: (_a, _k, ctx) => {
          ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
          return forever();
        },
      },
      { timeLimit: 0.05 },
    );
    expect(await (await send(client, 'hang')).error()).toMatchObject({ excType: 'TimeLimitExceeded' });
    expect(reasons[0]).toBeInstanceOf(TimeLimitExceeded);
  });
});

describe('Worker concurrency, prefetch and acks (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('concurrency bounds the tasks running at once; prefetch = concurrency x multiplier', async () => {
    let running = 0;
    let most = 0;
    let open = false;
    const gates: Array<() => void> = [];
    const { client, worker } = await startWorker(
      cleanups,
      {
        slow: async () => {
          running++;
          most = Math.max(most, running);
          if (!open) await new Promise<void>((resolve) => gates.push(resolve));
          running--;
          return 1;
        },
      },
      { concurrency: 2, prefetchMultiplier: 3 },
    );
    const sent = await Promise.all(Array.from({ length: 10 }, () => send(client, 'slow')));
    // 2 running, 4 more received and waiting for a slot; the other 4 stay in the queue.
    await waitUntil(() => worker.active === 2 && worker.reserved === 4, { what: '2 active and 4 reserved' });
    expect((await worker.control('stats')) as Record<string, unknown>).toMatchObject({ prefetch_count: 6 });
    // Every task from now on runs through; the two held ones are released.
    open = true;
    gates.splice(0).forEach((g) => g());
    await Promise.all(sent.map((s) => s.get()));
    expect(most).toBe(2);
  });

  it('acksLate (default) acks after the result is stored; acksLate: false acks when the task starts', async () => {
    const gates: Array<() => void> = [];
    const hold = (): Promise<number> => new Promise<number>((resolve) => gates.push(() => resolve(1)));
    const late = await startWorker(cleanups, { hold });
    const early = await startWorker(cleanups, { hold }, { acksLate: false });
    await send(late.client, 'hold');
    await send(early.client, 'hold');
    await waitUntil(() => gates.length === 2);
    const ackedWhileRunning = async (w: typeof late.worker): Promise<unknown> =>
      ((await w.control('active')) as Array<{ acknowledged: boolean }>)[0]?.acknowledged;
    expect(await ackedWhileRunning(late.worker)).toBe(false);
    expect(await ackedWhileRunning(early.worker)).toBe(true);
    gates.forEach((g) => g());
  });

  it('rate_limit spaces the starts of a task type; other tasks are not held back', async () => {
    const starts: number[] = [];
    const { client } = await startWorker(cleanups, {
      limited: { rateLimit: '10/s', handler: () => starts.push(Date.now()) },
      free: () => 'free',
    });
    const sent = await Promise.all(Array.from({ length: 4 }, () => send(client, 'limited')));
    expect(await (await send(client, 'free')).get()).toBe('free');
    await Promise.all(sent.map((s) => s.get()));
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] ?? 0));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(90);
  });

  it('a bad option names the task', async () => {
    await expect(startWorker(cleanups, { bad: { handler: () => 1, rateLimit: '5/d' } })).rejects.toThrow(
      /task bad/,
    );
    await expect(startWorker(cleanups, { bad: { handler: () => 1, maxRetries: -1 } })).rejects.toThrow(
      /task bad/,
    );
  });
});
