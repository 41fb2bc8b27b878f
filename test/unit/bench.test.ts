/**
 * The bench's measurement helpers (bounded concurrency, percentiles, medians, rates, queue
 * names), the reduction of rounds to medians, and a whole run on memory://.
 */
import { describe, expect, it, vi } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { describeLatency, describeReport, runBenchCli } from '../../bench/cli.js';
import type { BenchRecord, RpcLatencyRecord } from '../../bench/cli.js';
import { queueName } from '../../bench/raw-amqplib.js';
import { runBench, summarizeRounds } from '../../bench/run-bench.js';
import type { SideTimes } from '../../bench/run-bench.js';
import { RssSampler, median, percentile, pool, rate, round } from '../../bench/stats.js';
import { harness } from '../cli-harness.js';

/** A harness whose `run` drives the bench's command line with fake backends. */
function bench() {
  const h = harness();
  return { ...h, run: (...argv: string[]) => runBenchCli(argv, h.io) };
}

describe('pool', () => {
  it('runs every item once with at most `concurrency` in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: number[] = [];
    await pool(100, 7, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      // The scenario: each item is slow enough for the pool to fill up.
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
        // The scenario: items still running when item 10 fails.
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

  it('median is the middle sample, or the mean of the two middle ones', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNull();
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

describe('summarizeRounds', () => {
  // Times for N = 1000 results, so a rate is 1e6 / ms.
  const side = (storePerS: number, collectPerS: number, teardownMs = 0): SideTimes => ({
    storeMs: 1e6 / storePerS,
    collectMs: 1e6 / collectPerS,
    teardownMs,
  });

  it('reports the median of each rate and teardown, and every round in order', () => {
    const s = summarizeRounds(1000, [
      { backend: side(3000, 4000, 5), raw: side(6000, 5000, 1) },
      { backend: side(1000, 2000, 9), raw: side(2000, 8000, 3) },
      { backend: side(2000, 6000, 7), raw: side(4000, 6000, 2) },
    ]);
    expect(s).toMatchObject({
      rounds: 3,
      store_per_s: 2000,
      collect_per_s: 4000,
      raw_store_per_s: 4000,
      raw_collect_per_s: 6000,
      collect_teardown_ms: 7,
      raw_collect_teardown_ms: 2,
    });
    expect(s.per_round).toEqual([
      { store_per_s: 3000, collect_per_s: 4000, raw_store_per_s: 6000, raw_collect_per_s: 5000 },
      { store_per_s: 1000, collect_per_s: 2000, raw_store_per_s: 2000, raw_collect_per_s: 8000 },
      { store_per_s: 2000, collect_per_s: 6000, raw_store_per_s: 4000, raw_collect_per_s: 6000 },
    ]);
  });

  it('takes each ratio as the median of per-round ratios, not the ratio of the medians', () => {
    // Round 2's bare collect is an outlier: ratios 1.0, 0.5, 1.0 -> median 1.0, while the
    // medians (5000 / 6000) would say 0.83.
    const s = summarizeRounds(1000, [
      { backend: side(1000, 4000), raw: side(2000, 4000) },
      { backend: side(1000, 5000), raw: side(2000, 10_000) },
      { backend: side(1000, 6000), raw: side(2000, 6000) },
    ]);
    expect(s.collect_per_s).toBe(5000);
    expect(s.raw_collect_per_s).toBe(6000);
    expect(s.collect_ratio).toBe(1);
    expect(s.store_ratio).toBe(0.5);
  });

  it('averages the two middle rounds of an even count', () => {
    const s = summarizeRounds(1000, [
      { backend: side(1000, 1000), raw: side(1000, 2000) },
      { backend: side(2000, 2000), raw: side(1000, 2000) },
    ]);
    expect(s.store_per_s).toBe(1500);
    expect(s.store_ratio).toBe(1.5);
    expect(s.collect_ratio).toBe(0.75);
  });

  it('has null bare figures and ratios when no round had a bare side', () => {
    const s = summarizeRounds(1000, [{ backend: side(1000, 2000, 4), raw: null }]);
    expect(s).toMatchObject({
      rounds: 1,
      store_per_s: 1000,
      collect_per_s: 2000,
      raw_store_per_s: null,
      raw_collect_per_s: null,
      store_ratio: null,
      collect_ratio: null,
      collect_teardown_ms: 4,
      raw_collect_teardown_ms: null,
    });
    expect(s.per_round).toEqual([
      { store_per_s: 1000, collect_per_s: 2000, raw_store_per_s: null, raw_collect_per_s: null },
    ]);
  });

  it('refuses zero rounds', () => {
    expect(() => summarizeRounds(1000, [])).toThrow(RangeError);
  });
});

describe('runBench on memory:// (no bare side)', () => {
  const config = {
    url: 'memory://',
    n: 100,
    concurrency: 8,
    samples: 10,
    getmanyN: 0,
    getmanyUrl: 'memory://',
    timeoutMs: 10_000,
    exchange: 'celeryresults',
    persistent: false,
    expires: null,
    open: async (url: string) => new AMQPBackend({ connection: url }),
  };

  it('runs `rounds` rounds, labels each phase with its round and reports one entry per round', async () => {
    const phases: string[] = [];
    const report = await runBench({
      ...config,
      rounds: 2,
      phase: (label) => {
        phases.push(label);
        return { increment() {}, stop() {} };
      },
    });
    expect(report.rounds).toBe(2);
    expect(report.per_round).toHaveLength(2);
    expect(phases).toEqual(['store r1/2', 'collect r1/2', 'store r2/2', 'collect r2/2']);
    for (const r of report.per_round) {
      expect(r.store_per_s).toBeGreaterThan(0);
      expect(r.collect_per_s).toBeGreaterThan(0);
      expect(r.raw_store_per_s).toBeNull();
    }
    expect(report.store_per_s).toBe(
      Math.round(((report.per_round[0]?.store_per_s ?? 0) + (report.per_round[1]?.store_per_s ?? 0)) / 2),
    );
    expect(report).toMatchObject({ raw_collect_per_s: null, collect_ratio: null, store_ratio: null });
  });

  it('the getMany phase reports the child process figures when a child ran it, and fails on a loss', async () => {
    const seen: string[][] = [];
    const report = await runBench({
      ...config,
      rounds: 1,
      getmanyN: 50,
      getmanyChild: async (ids) => {
        seen.push(ids);
        return { ms: 10, received: ids.length, peakRssMb: 42.5 };
      },
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toHaveLength(50);
    expect(report).toMatchObject({ getmany_n: 50, getmany_per_s: 5000, getmany_rss_mb: 42.5 });
    expect(report.getmany_store_rss_mb).toBeGreaterThan(0);
    await expect(
      runBench({
        ...config,
        rounds: 1,
        getmanyN: 50,
        getmanyChild: async (ids) => ({ ms: 10, received: ids.length - 1, peakRssMb: 1 }),
      }),
    ).rejects.toThrow(/getMany lost results: 1 missing of 50/);
    // No child (undefined): measured in-process, no store figure.
    const inProcess = await runBench({
      ...config,
      rounds: 1,
      getmanyN: 50,
      getmanyChild: async () => undefined,
    });
    expect(inProcess.getmany_n).toBe(50);
    expect(inProcess.getmany_store_rss_mb).toBeUndefined();
  });

  it('pauses settleMs before each store and collect phase of every round, and not at all by default', async () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      const pauses = (): number => spy.mock.calls.filter((c) => c[1] === 37).length;
      await runBench({ ...config, rounds: 2 });
      expect(pauses()).toBe(0);
      await runBench({ ...config, rounds: 2, settleMs: 37 });
      // memory:// has no bare side: store + collect of the backend, in each of 2 rounds.
      expect(pauses()).toBe(4);
    } finally {
      spy.mockRestore();
    }
  });

  it('defaults to 3 rounds and rejects fewer than 1', async () => {
    expect((await runBench(config)).per_round).toHaveLength(3);
    await expect(runBench({ ...config, rounds: 0 })).rejects.toThrow(RangeError);
  });

  it('throws when a round loses results', async () => {
    let opened = 0;
    await expect(
      runBench({
        ...config,
        rounds: 2,
        open: async (url) => {
          const backend = new AMQPBackend({ connection: url });
          opened++;
          // Every collect after the warm-up and round 1 comes back one short.
          let calls = 0;
          const getMany = backend.getMany.bind(backend);
          backend.getMany = (ids, opts) => getMany([...ids].slice(0, ++calls > 2 ? -1 : undefined), opts);
          return backend;
        },
      }),
    ).rejects.toThrow('backend collect lost results: 1 missing');
    expect(opened).toBe(1);
  });
});

it('queue names are task ids without dashes (docs/wire.md §2)', () => {
  expect(queueName('c3a9f5e2-7d41-4b8e-9a0c-1f2e3d4c5b6a')).toBe('c3a9f5e27d414b8e9a0c1f2e3d4c5b6a');
});

describe('describeReport', () => {
  const base: BenchRecord = {
    n: 4000,
    concurrency: 64,
    samples: 1000,
    rounds: 2,
    store_per_s: 30_000,
    collect_per_s: 40_000,
    raw_store_per_s: 35_000,
    raw_collect_per_s: 45_000,
    store_ratio: 0.86,
    collect_ratio: 0.89,
    collect_teardown_ms: 3,
    raw_collect_teardown_ms: 2,
    per_round: [
      { store_per_s: 29_000, collect_per_s: 39_000, raw_store_per_s: 34_000, raw_collect_per_s: 44_000 },
      { store_per_s: 31_000, collect_per_s: 41_000, raw_store_per_s: 36_000, raw_collect_per_s: 46_000 },
    ],
    waitfor_p50_ms: 0.5,
    waitfor_p99_ms: 2,
    rss_mb: 120,
    queues_deleted: 10,
    broker: 'amqp://127.0.0.1//',
    node: 'v20',
    date: '2026-01-01T00:00:00.000Z',
  };

  it('shows the medians with the round count and one compact line of every round', () => {
    const text = describeReport(base);
    expect(text).toContain('median of 2 round(s)');
    expect(text).toMatch(/collect\s+40,000\/s\s+45,000\/s\s+0\.89x/);
    expect(text).toContain(
      'per round, store/collect backend | bare: r1 29.0k/39.0k | 34.0k/44.0k; r2 31.0k/41.0k | 36.0k/46.0k',
    );
    expect(
      describeReport({
        ...base,
        per_round: [
          { store_per_s: 1500, collect_per_s: 2500, raw_store_per_s: null, raw_collect_per_s: null },
        ],
      }),
    ).toContain('r1 1.5k/2.5k | n/a/n/a');
  });

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

describe('the command line (fake backend)', () => {
  it('on a non-AMQP broker measures the backend only and prints one JSON object', async () => {
    const h = bench();
    expect(await h.run('--n', '50', '--samples', '10', '--broker', 'memory://', '--json')).toBe(0);
    const report = JSON.parse(h.stdout.lines().at(-1)!);
    expect(report).toMatchObject({
      n: 50,
      samples: 10,
      raw_store_per_s: null,
      store_ratio: null,
      broker: 'memory://',
    });
    expect(report.store_per_s).toBeGreaterThan(0);
    expect(report.waitfor_p99_ms).toBeGreaterThanOrEqual(report.waitfor_p50_ms);
    expect(report.rss_mb).toBeGreaterThan(0);
    // --rounds defaults to 3, each round storing N on one backend kept open across rounds.
    expect(report.rounds).toBe(3);
    expect(report.per_round).toHaveLength(3);
    expect(h.backends).toHaveLength(1);
    expect(h.backends[0]!.calls.filter((c) => c.op === 'storeResult')).toHaveLength(50 + 3 * 50 + 10);
  });

  it('--rounds takes a positive count', async () => {
    const h = bench();
    const args = ['--n', '20', '--samples', '5', '--broker', 'memory://', '--json'];
    expect(await h.run(...args, '--rounds', '2')).toBe(0);
    expect(JSON.parse(h.stdout.lines().at(-1)!).per_round).toHaveLength(2);
    expect(await h.run(...args, '--rounds', '0')).toBe(2);
  });
});

describe('describeLatency', () => {
  it("prints the medians, every round and the rounds where Node's p99 was at or below Python's", () => {
    const diagnostics = {
      sendP50: 1,
      sendP99: 2,
      replyFirst: 3,
      gcCount: 0,
      gcMs: 0,
      slowWithGc: 0,
      slow: 2,
      loopDelayP99: 1,
      loopDelayMax: 2,
    };
    const record: RpcLatencyRecord = {
      mode: 'rpc-latency',
      n: 200,
      warmup: 20,
      nodeWarmup: 2000,
      rounds: 2,
      worker: { pool: 'prefork', concurrency: 2, prefetchMultiplier: 64 },
      nodeConfirm: true,
      loopDelay: false,
      node: { p50: 1.5, p99: 4, max: 5 },
      python: { p50: 2, p99: 4.5, max: 6 },
      nodeP99Wins: 1,
      nodeP50Wins: 1,
      pooled: { node: { p50: 1.45, p99: 4.8, max: 6 }, python: { p50: 2, p99: 4.9, max: 5 } },
      perRound: [
        {
          first: 'node',
          node: { p50: 1.4, p99: 3, max: 4, cpuMsPerRoundTrip: 0.5, diagnostics },
          python: { p50: 2, p99: 4, max: 5, cpuMsPerRoundTrip: 0.9 },
        },
        {
          first: 'python',
          node: { p50: 1.6, p99: 5, max: 6, cpuMsPerRoundTrip: 0.5, diagnostics },
          python: null,
        },
      ],
      broker: 'amqp://guest:****@localhost:5672//',
      node_version: 'v20.0.0',
      date: '2026-11-30T00:00:00.000Z',
    };
    const text = describeLatency(record);
    expect(text).toContain('node   p50 1.50 / p99 4.00 / max 5.00 ms');
    expect(text).toContain('round 1 (node first): node p50 1.40 / p99 3.00 / max 4.00 ms, CPU 0.5 ms/rt');
    expect(text).toContain('| python n/a');
    expect(text).toContain('pooled   node   p50 1.45 / p99 4.80 / max 6.00 ms');
    expect(text).toContain('node p99 <= python p99 in 1 of 1 rounds; p50 in 1 of 1');
  });
});
