/** The bench's measurement helpers: bounded concurrency, percentiles, rates, queue names. */
import { describe, expect, it } from 'vitest';
import { queueName } from '../../src/cli/bench/raw-amqplib.js';
import { RssSampler, percentile, pool, rate, round } from '../../src/cli/bench/stats.js';

describe('pool', () => {
  it('runs every item once with at most `concurrency` in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: number[] = [];
    await pool(100, 7, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 1));
      seen.push(i);
      inFlight--;
    });
    expect(peak).toBe(7);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('rejects with the first failure and stops taking new items', async () => {
    let started = 0;
    await expect(
      pool(1000, 4, async (i) => {
        started++;
        if (i === 10) throw new Error('boom');
        await new Promise((r) => setTimeout(r, 1));
      }),
    ).rejects.toThrow('boom');
    expect(started).toBeLessThan(20);
  });
});

describe('figures', () => {
  it('percentile is nearest-rank', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile([5], 99)).toBe(5);
    expect(percentile([], 50)).toBeNaN();
  });

  it('rate and round', () => {
    expect(rate(4000, 2000)).toBe(2000);
    expect(rate(1, 0)).toBe(0);
    expect(round(1.23456, 2)).toBe(1.23);
  });

  it('the RSS sampler reports a plausible peak in MB', () => {
    const rss = new RssSampler(1000);
    rss.stop();
    expect(rss.peakMb).toBeGreaterThan(10);
    expect(rss.peakMb).toBeLessThan(10_000);
  });
});

it('queue names are task ids without dashes (WIRE.md 2)', () => {
  expect(queueName('c3a9f5e2-7d41-4b8e-9a0c-1f2e3d4c5b6a')).toBe('c3a9f5e27d414b8e9a0c1f2e3d4c5b6a');
});
