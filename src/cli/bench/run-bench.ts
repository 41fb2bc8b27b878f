/**
 * The measurement plan of `celery-amqp bench`. Both sides run in the same process against
 * the same broker, one after the other, at the same concurrency:
 *
 * 1. backend: warm-up, then store N (timed), then collect N with one getMany (timed);
 * 2. backend: waitFor latency on already-stored results, sequential, `samples` calls;
 * 3. bare amqplib ({@link RawAmqp}): warm-up, store N, collect N;
 * 4. optional: getMany over `getmanyN` ids with the peak RSS of that phase;
 * 5. always: every queue any phase created is deleted.
 *
 * @module
 */
import type { AMQPBackend } from '../../celery/amqp-backend.js';
import {
  collectAll,
  latencySummary,
  storeAll,
  taskIds,
  valueFor,
  waitForLatencies,
} from './backend-runner.js';
import { RawAmqp } from './raw-amqplib.js';
import { RssSampler, rate, round } from './stats.js';

/** A progress handle for one phase (a no-op off a terminal). */
export interface PhaseProgress {
  increment(by?: number): void;
  stop(): void;
}

/** What to measure and how. */
export interface BenchConfig {
  /** Broker URL of the main comparison. */
  url: string;
  n: number;
  concurrency: number;
  /** waitFor samples. */
  samples: number;
  /** 0 skips the getMany memory phase. */
  getmanyN: number;
  getmanyUrl: string;
  /** Collection deadline per phase, ms. */
  timeoutMs: number;
  /** Mirrors the backend's settings on the bare side. */
  exchange: string;
  persistent: boolean;
  expires: number | null;
  open: (url: string) => Promise<AMQPBackend>;
  phase?: (label: string, total: number) => PhaseProgress;
  /** Called between phases (text-mode progress notes). */
  log?: (text: string) => void;
}

/** The figures `bench` reports; the keys are the JSON output's. */
export interface BenchReport {
  n: number;
  concurrency: number;
  samples: number;
  store_per_s: number;
  collect_per_s: number;
  raw_store_per_s: number | null;
  raw_collect_per_s: number | null;
  store_ratio: number | null;
  collect_ratio: number | null;
  /** After the last result: getMany's own cleanup (consumer cancels, channel close). */
  collect_teardown_ms: number;
  raw_collect_teardown_ms: number | null;
  waitfor_p50_ms: number;
  waitfor_p99_ms: number;
  rss_mb: number;
  getmany_n?: number;
  getmany_per_s?: number;
  getmany_rss_mb?: number;
  queues_deleted: number;
}

const WARMUP = 200;

function isAmqp(url: string): boolean {
  return /^amqps?:\/\//i.test(url.trim());
}

const noProgress: PhaseProgress = { increment() {}, stop() {} };

/**
 * Runs the plan, deletes every queue it created (also on failure) and returns the report.
 * Throws when a phase loses or corrupts results: a fast benchmark of a broken backend is
 * worth nothing.
 *
 * @example
 * ```ts
 * const report = await runBench({ url, n: 4000, concurrency: 64, samples: 1000, ... });
 * ```
 */
export async function runBench(cfg: BenchConfig): Promise<BenchReport> {
  // Every id whose queue may exist on the broker, so cleanup can find them all.
  const created: string[] = [];
  const createdGetMany: string[] = [];
  let report: BenchReport;
  try {
    report = await measure(cfg, created, createdGetMany);
  } catch (err) {
    await cleanupQueues(cfg.url, created, cfg.concurrency).catch(() => 0);
    await cleanupQueues(cfg.getmanyUrl, createdGetMany, cfg.concurrency).catch(() => 0);
    throw err;
  }
  report.queues_deleted =
    (await cleanupQueues(cfg.url, created, cfg.concurrency)) +
    (await cleanupQueues(cfg.getmanyUrl, createdGetMany, cfg.concurrency));
  return report;
}

async function measure(cfg: BenchConfig, created: string[], createdGetMany: string[]): Promise<BenchReport> {
  const phase = cfg.phase ?? (() => noProgress);
  const log = cfg.log ?? (() => {});
  const rss = new RssSampler();
  const fresh = (n: number, into: string[] = created): string[] => {
    const ids = taskIds(n);
    into.push(...ids);
    return ids;
  };
  const raw = isAmqp(cfg.url)
    ? {
        exchange: cfg.exchange,
        persistent: cfg.persistent,
        expires: cfg.expires,
        concurrency: cfg.concurrency,
      }
    : undefined;

  try {
    // 1-2. The backend.
    const backend = await cfg.open(cfg.url);
    let storeMs: number;
    let collectMs: number;
    let teardownMs: number;
    let latencies: number[];
    try {
      log('backend: warm-up');
      const warm = fresh(Math.min(WARMUP, cfg.n));
      await storeAll(backend, warm, cfg.concurrency);
      await collectAll(backend, warm, cfg.timeoutMs);
      log(`backend: store and collect ${cfg.n}`);

      const ids = fresh(cfg.n);
      const storeBar = phase('store', cfg.n);
      storeMs = await storeAll(backend, ids, cfg.concurrency, () => storeBar.increment()).finally(() =>
        storeBar.stop(),
      );
      const collectBar = phase('collect', cfg.n);
      const collected = await collectAll(backend, ids, cfg.timeoutMs, () => collectBar.increment()).finally(
        () => collectBar.stop(),
      );
      if (collected.received !== cfg.n || collected.wrong !== 0) {
        throw new Error(
          `backend collect lost results: ${cfg.n - collected.received} missing, ${collected.wrong} wrong out of ${cfg.n}`,
        );
      }
      collectMs = collected.ms;
      teardownMs = collected.teardownMs;
      log(`backend: store ${rate(cfg.n, storeMs)}/s, collect ${rate(cfg.n, collectMs)}/s`);

      // waitFor consumes its result, so each sample gets a result of its own.
      log(`backend: ${cfg.samples} waitFor samples`);
      const sampleIds = fresh(cfg.samples);
      await storeAll(backend, sampleIds, cfg.concurrency);
      latencies = await waitForLatencies(backend, sampleIds);
    } finally {
      await backend.close();
    }
    const lat = latencySummary(latencies);

    // 3. Bare amqplib.
    let rawStoreMs: number | null = null;
    let rawCollectMs: number | null = null;
    let rawTeardownMs: number | null = null;
    if (raw !== undefined) {
      const client = await RawAmqp.open({ url: cfg.url, ...raw });
      try {
        log('amqplib: warm-up, then store and collect');
        const warm = fresh(Math.min(WARMUP, cfg.n));
        await client.store(warm, valueFor);
        await client.collect(warm, cfg.timeoutMs);

        const ids = fresh(cfg.n);
        rawStoreMs = await client.store(ids, valueFor);
        const collected = await client.collect(ids, cfg.timeoutMs);
        if (collected.received !== cfg.n) {
          throw new Error(
            `bare amqplib collect lost results: ${cfg.n - collected.received} missing of ${cfg.n}`,
          );
        }
        rawCollectMs = collected.ms;
        rawTeardownMs = collected.teardownMs;
        log(`amqplib: store ${rate(cfg.n, rawStoreMs)}/s, collect ${rate(cfg.n, rawCollectMs)}/s`);
      } finally {
        await client.close();
      }
    }
    rss.sample();
    const mainPeak = rss.peakMb;

    // 4. getMany over many ids: its own peak.
    let getmany: Pick<BenchReport, 'getmany_n' | 'getmany_per_s' | 'getmany_rss_mb'> = {};
    if (cfg.getmanyN > 0) {
      rss.reset();
      const gm = await cfg.open(cfg.getmanyUrl);
      try {
        const ids = fresh(cfg.getmanyN, createdGetMany);
        const storeBar = phase('store', cfg.getmanyN);
        await storeAll(gm, ids, cfg.concurrency, () => storeBar.increment()).finally(() => storeBar.stop());
        const bar = phase('getMany', cfg.getmanyN);
        // No verification map here: the phase measures what a plain getMany caller holds.
        const collected = await collectAll(gm, ids, cfg.timeoutMs, () => bar.increment(), false).finally(() =>
          bar.stop(),
        );
        if (collected.received !== cfg.getmanyN) {
          throw new Error(
            `getMany lost results: ${cfg.getmanyN - collected.received} missing of ${cfg.getmanyN}`,
          );
        }
        getmany = {
          getmany_n: cfg.getmanyN,
          getmany_per_s: rate(cfg.getmanyN, collected.ms),
          getmany_rss_mb: rss.peakMb,
        };
      } finally {
        await gm.close();
      }
    }
    rss.stop();

    const storePerS = rate(cfg.n, storeMs);
    const collectPerS = rate(cfg.n, collectMs);
    const rawStorePerS = rawStoreMs === null ? null : rate(cfg.n, rawStoreMs);
    const rawCollectPerS = rawCollectMs === null ? null : rate(cfg.n, rawCollectMs);
    return {
      n: cfg.n,
      concurrency: cfg.concurrency,
      samples: cfg.samples,
      store_per_s: storePerS,
      collect_per_s: collectPerS,
      raw_store_per_s: rawStorePerS,
      raw_collect_per_s: rawCollectPerS,
      store_ratio: rawStorePerS ? round(storePerS / rawStorePerS) : null,
      collect_ratio: rawCollectPerS ? round(collectPerS / rawCollectPerS) : null,
      collect_teardown_ms: Math.round(teardownMs),
      raw_collect_teardown_ms: rawTeardownMs === null ? null : Math.round(rawTeardownMs),
      waitfor_p50_ms: round(lat.p50, 3),
      waitfor_p99_ms: round(lat.p99, 3),
      rss_mb: mainPeak,
      ...getmany,
      queues_deleted: 0,
    };
  } finally {
    rss.stop();
  }
}

/**
 * Deletes the queues of these ids on an AMQP broker (the embedded broker dies with the
 * process, so there is nothing to do there). Returns how many deletes were sent.
 *
 * @example
 * ```ts
 * await cleanupQueues(url, ids, 64);
 * ```
 */
export async function cleanupQueues(
  url: string,
  ids: readonly string[],
  concurrency: number,
): Promise<number> {
  if (!isAmqp(url) || ids.length === 0) return 0;
  const client = await RawAmqp.open({ url, concurrency, exchange: '', persistent: true, expires: null });
  try {
    return await client.deleteQueues(ids);
  } finally {
    await client.close();
  }
}
