/** The bench's measurement helpers: bounded concurrency, percentiles, rates, queue names. */
import { describe, expect, it } from 'vitest';
import { describeReport } from '../../src/cli/bench.js';
import type { BenchRecord } from '../../src/cli/bench.js';
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

describe('describeReport with rpc:// figures', () => {
  const base: BenchRecord = {
    n: 4000,
    concurrency: 64,
    samples: 1000,
    store_per_s: 30_000,
    collect_per_s: 40_000,
    raw_store_per_s: 35_000,
    raw_collect_per_s: 45_000,
    store_ratio: 0.86,
    collect_ratio: 0.89,
    collect_teardown_ms: 3,
    raw_collect_teardown_ms: 2,
    waitfor_p50_ms: 0.5,
    waitfor_p99_ms: 2,
    rss_mb: 120,
    queues_deleted: 10,
    broker: 'amqp://127.0.0.1//',
    node: 'v20',
    date: '2026-01-01T00:00:00.000Z',
  };

  it('has no rpc lines unless the rpc keys are there', () => {
    expect(describeReport(base)).not.toContain('rpc://');
  });

  it('shows store/collect and the round trips of both clients with the worker CPU', () => {
    const text = describeReport({
      ...base,
      rpc_n: 20_000,
      rpc_store_per_s: 25_000,
      rpc_collect_per_s: 24_000,
      rpc_roundtrip_n: 2000,
      rpc_roundtrip_reps: 3,
      rpc_roundtrip_per_s: 900,
      rpc_roundtrip_burst_per_s: 300,
      rpc_send_per_s: 5000,
      python_rpc_roundtrip_per_s: 450,
      python_rpc_send_per_s: 600,
      rpc_worker_cpu_pct: { node: 40, nodeBurst: 8, python: 25 },
      rpc_worker_cpu_ms_per_task: { node: 0.35, nodeBurst: 0.36, python: null },
    });
    expect(text).toContain('rpc:// store/collect');
    expect(text).toContain('median of 3');
    expect(text).toMatch(/node .*windowed/);
    expect(text).toMatch(/python /);
    expect(text).toContain('burst 8%');
    expect(text).toContain('node 0.35 ms, burst 0.36 ms, python n/a ms');
    // The last line stays the queue count.
    expect(text.split('\n').at(-1)).toContain('queues deleted');
  });
});
