import { describe, expect, it } from 'vitest';
import { AbortError, ChannelError, ConnectionError } from '../../src/errors.js';
import { retryIntervals, retryOverTime, sleep, withDeadline } from '../../src/kombu/retry.js';
import { TimeoutError } from '../../src/errors.js';

function take(it: Iterator<number>, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(it.next().value as number);
  return out;
}

describe('retryIntervals', () => {
  it("follows kombu's defaults: 2s steps up to start+max, then repeats", () => {
    const seq = take(retryIntervals(), 18);
    expect(seq).toEqual([
      2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 18000, 20000, 22000, 24000, 26000, 28000, 30000,
      32000, 32000, 32000,
    ]);
  });
  it("gives Celery's result retry policy as 0, 1, 1, 1 (s)", () => {
    expect(take(retryIntervals({ intervalStart: 0, intervalStep: 1000, intervalMax: 1000 }), 5)).toEqual([
      0, 1000, 1000, 1000, 1000,
    ]);
  });
  it('caps at start+max inclusive and repeats the last value', () => {
    expect(take(retryIntervals({ intervalStart: 100, intervalStep: 300, intervalMax: 500 }), 5)).toEqual([
      100, 400, 400, 400, 400,
    ]);
  });
});

describe('retryOverTime', () => {
  it('retries recoverable errors up to maxRetries and reports each retry', async () => {
    const seen: Array<[number, number]> = [];
    let calls = 0;
    const err = await retryOverTime(
      () => {
        calls++;
        return Promise.reject(new ConnectionError('down'));
      },
      {
        policy: { maxRetries: 3, intervalStart: 0, intervalStep: 1, intervalMax: 2 },
        onRetry: (_e, attempt, ms) => void seen.push([attempt, ms]),
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(calls).toBe(4);
    expect(seen).toEqual([
      [1, 0],
      [2, 1],
      [3, 2],
    ]);
  });
  it('returns the first success', async () => {
    let calls = 0;
    const v = await retryOverTime(
      () => (++calls < 3 ? Promise.reject(new ConnectionError('x')) : Promise.resolve('ok')),
      { policy: { intervalStart: 0, intervalStep: 0, intervalMax: 0 } },
    );
    expect(v).toBe('ok');
    expect(calls).toBe(3);
  });
  it('throws non-recoverable errors at once', async () => {
    let calls = 0;
    const err = await retryOverTime(() => {
      calls++;
      return Promise.reject(new ChannelError('406', { code: 'PRECONDITION_FAILED' }));
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelError);
    expect(calls).toBe(1);
  });
  it('stops with AbortError when the signal fires during a sleep', async () => {
    const ac = new AbortController();
    const p = retryOverTime(() => Promise.reject(new ConnectionError('x')), {
      policy: { intervalStart: 60_000 },
      onRetry: () => ac.abort(),
      signal: ac.signal,
    });
    await expect(p).rejects.toBeInstanceOf(AbortError);
  });
});

describe('waits', () => {
  it('withDeadline rejects with TimeoutError and calls onCancel', async () => {
    let cancelled: Error | undefined;
    const never = new Promise<void>(() => undefined);
    await expect(withDeadline(never, { timeout: 5 }, (e) => (cancelled = e))).rejects.toBeInstanceOf(
      TimeoutError,
    );
    expect(cancelled).toBeInstanceOf(TimeoutError);
  });
  it('sleep rejects at once on an aborted signal', async () => {
    await expect(sleep(10_000, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
  });
});
