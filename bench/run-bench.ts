/**
 * The measurement plan of the bench (`npm run bench`). Both sides run in the same process against
 * the same broker, at the same concurrency, over one backend and one bare client that stay
 * open for the whole comparison:
 *
 * 1. warm-up, once per side: backend, then bare amqplib ({@link RawAmqp});
 * 2. `rounds` rounds, each on fresh ids: backend store N (timed) and collect N with one
 *    getMany (timed), then bare amqplib store N and collect N;
 * 3. backend: waitFor latency on already-stored results, sequential, `samples` calls;
 * 4. optional: getMany over `getmanyN` ids with the peak RSS of that phase (the results are
 *    stored here; with `getmanyChild` the getMany runs, and its RSS is sampled, in a child);
 * 5. always: every queue any phase created is deleted.
 *
 * The rates reported are medians over the rounds, and each ratio is the median of the
 * per-round ratios (see {@link summarizeRounds}): on a noisy broker one sample per side made
 * the collect ratio swing by a third between runs.
 *
 * @module
 */
import type { AMQPBackend } from '../src/celery/amqp-backend.js';
import {
  collectAll,
  latencySummary,
  storeAll,
  taskIds,
  valueFor,
  waitForLatencies,
} from './backend-runner.js';
import type { GetManyChildOutput } from './getmany-child.js';
import { RawAmqp } from './raw-amqplib.js';
import { sleep } from '../src/kombu/retry.js';
import { RssSampler, median, rate, round } from './stats.js';

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
  /** Store-and-collect rounds per side (alternating sides); medians are reported. @default 3 */
  rounds?: number;
  /** waitFor samples. */
  samples: number;
  /** 0 skips the getMany memory phase. */
  getmanyN: number;
  getmanyUrl: string;
  /**
   * Runs the getMany of phase 4 in a process of its own (see getmany-child.ts), so that its
   * peak RSS is getMany's alone; resolves `undefined` to fall back to measuring in-process.
   * @default undefined (in-process)
   */
  getmanyChild?: ((ids: string[]) => Promise<GetManyChildOutput | undefined>) | undefined;
  /** Collection deadline per phase, ms. */
  timeoutMs: number;
  /**
   * Pause before each store and collect phase of the rounds, ms, the same for both sides:
   * RabbitMQ goes on creating or deleting the last phase's durable queues for a while after
   * the client is done, and that work would land on whichever phase comes next. @default 0
   */
  settleMs?: number | undefined;
  /** Mirrors the backend's settings on the bare side. */
  exchange: string;
  persistent: boolean;
  expires: number | null;
  open: (url: string) => Promise<AMQPBackend>;
  phase?: (label: string, total: number) => PhaseProgress;
  /** Called between phases (text-mode progress notes). */
  log?: (text: string) => void;
}

/** The rates of one round, as `per_round` reports them (bare figures null off AMQP). */
export interface RoundRates {
  store_per_s: number;
  collect_per_s: number;
  raw_store_per_s: number | null;
  raw_collect_per_s: number | null;
}

/** The timings of one store-and-collect of N on one side, in ms. */
export interface SideTimes {
  storeMs: number;
  /** To the last result in hand. */
  collectMs: number;
  /** From the last result to the collect's return. */
  teardownMs: number;
}

/** One round as measured: the backend side, then the bare side (null when it did not run). */
export interface RoundTimes {
  backend: SideTimes;
  raw: SideTimes | null;
}

/** The figures `bench` reports; the keys are the JSON output's. */
export interface BenchReport {
  n: number;
  concurrency: number;
  samples: number;
  /** Store-and-collect rounds per side; the rates below are medians over them. */
  rounds: number;
  store_per_s: number;
  collect_per_s: number;
  raw_store_per_s: number | null;
  raw_collect_per_s: number | null;
  /** Median of the per-round ratios backend / bare amqplib. */
  store_ratio: number | null;
  collect_ratio: number | null;
  /** After the last result: getMany's own cleanup (consumer cancels, channel close). */
  collect_teardown_ms: number;
  raw_collect_teardown_ms: number | null;
  /** Each round's rates, in order, so the spread behind the medians is visible. */
  per_round: RoundRates[];
  waitfor_p50_ms: number;
  waitfor_p99_ms: number;
  rss_mb: number;
  getmany_n?: number;
  getmany_per_s?: number;
  getmany_rss_mb?: number;
  /** Peak RSS of this process while it stored the getMany phase's results (when the getMany ran in a child). */
  getmany_store_rss_mb?: number;
  queues_deleted: number;
}

/** The part of the report {@link summarizeRounds} computes. */
export type RoundsSummary = Pick<
  BenchReport,
  | 'rounds'
  | 'store_per_s'
  | 'collect_per_s'
  | 'raw_store_per_s'
  | 'raw_collect_per_s'
  | 'store_ratio'
  | 'collect_ratio'
  | 'collect_teardown_ms'
  | 'raw_collect_teardown_ms'
  | 'per_round'
>;

/**
 * Reduces the rounds of N results each to the reported figures: every rate and teardown is
 * the median over the rounds, and each ratio is the median of the per-round ratios (a
 * round's backend rate over the same round's bare rate), so that a broker slowdown hitting
 * both sides of one round cancels out instead of skewing the ratio. Ratios and the bare
 * figures are null when no round has a bare side.
 *
 * @example
 * ```ts
 * const side = (ms: number) => ({ storeMs: ms, collectMs: ms, teardownMs: 1 });
 * summarizeRounds(1000, [{ backend: side(100), raw: side(50) }]).collect_ratio; // 0.5
 * ```
 */
export function summarizeRounds(n: number, rounds: readonly RoundTimes[]): RoundsSummary {
  if (rounds.length === 0) throw new RangeError('summarizeRounds needs at least one round');
  const perRound: RoundRates[] = rounds.map(({ backend, raw }) => ({
    store_per_s: rate(n, backend.storeMs),
    collect_per_s: rate(n, backend.collectMs),
    raw_store_per_s: raw === null ? null : rate(n, raw.storeMs),
    raw_collect_per_s: raw === null ? null : rate(n, raw.collectMs),
  }));
  const raws = rounds.flatMap((r) => (r.raw === null ? [] : [r.raw]));
  const rounded = (xs: number[], digits = 0): number | null => {
    const m = median(xs);
    return m === null ? null : round(m, digits);
  };
  // A bare rate of 0 (an instant phase) has no meaningful ratio: that round is left out.
  const ratio = (ours: keyof RoundRates, bare: keyof RoundRates): number | null =>
    rounded(
      perRound.flatMap((r) => {
        const b = r[bare];
        return b === null || b === 0 ? [] : [(r[ours] ?? 0) / b];
      }),
      2,
    );
  const figure = (xs: Array<number | null>): number | null =>
    rounded(xs.flatMap((x) => (x === null ? [] : [x])));
  return {
    rounds: rounds.length,
    store_per_s: figure(perRound.map((r) => r.store_per_s)) ?? 0,
    collect_per_s: figure(perRound.map((r) => r.collect_per_s)) ?? 0,
    raw_store_per_s: figure(perRound.map((r) => r.raw_store_per_s)),
    raw_collect_per_s: figure(perRound.map((r) => r.raw_collect_per_s)),
    store_ratio: ratio('store_per_s', 'raw_store_per_s'),
    collect_ratio: ratio('collect_per_s', 'raw_collect_per_s'),
    collect_teardown_ms: figure(rounds.map((r) => r.backend.teardownMs)) ?? 0,
    raw_collect_teardown_ms: figure(raws.map((r) => r.teardownMs)),
    per_round: perRound,
  };
}

const WARMUP = 200;
const DEFAULT_ROUNDS = 3;

/**
 * True for an amqp:// or amqps:// URL: a broker outside this process (the embedded
 * memory:// broker has no bare-amqplib side and cannot be reached from a child process).
 *
 * @example
 * ```ts
 * isAmqp('amqp://guest:guest@127.0.0.1:5672//'); // true
 * isAmqp('memory://'); // false
 * ```
 */
export function isAmqp(url: string): boolean {
  return /^amqps?:\/\//i.test(url.trim());
}

const noProgress: PhaseProgress = { increment() {}, stop() {} };

/**
 * Runs the plan, deletes every queue it created (also on failure) and returns the report.
 * Throws when a phase of any round loses or corrupts results: a fast benchmark of a broken
 * backend is worth nothing.
 *
 * Rounds: after one warm-up per side, each of `cfg.rounds` (default 3, at least 1) rounds
 * stores and collects N fresh results on the backend, then on bare amqplib. The reported
 * rates and teardowns are the medians over the rounds; `store_ratio` and `collect_ratio`
 * are the medians of the per-round ratios (not the ratio of the medians), and `per_round`
 * lists every round's rates. The waitFor and getMany phases run once.
 *
 * @example
 * ```ts
 * const report = await runBench({ url, n: 4000, concurrency: 64, rounds: 3, samples: 1000, ... });
 * report.collect_ratio; // median over the 3 rounds of backend collect/s / bare collect/s
 * ```
 */
export async function runBench(cfg: BenchConfig): Promise<BenchReport> {
  const rounds = cfg.rounds ?? DEFAULT_ROUNDS;
  if (!Number.isSafeInteger(rounds) || rounds < 1) {
    throw new RangeError(`bench rounds must be a positive integer, got ${rounds}`);
  }
  // Every id whose queue may exist on the broker, so cleanup can find them all.
  const created: string[] = [];
  const createdGetMany: string[] = [];
  let report: BenchReport;
  try {
    report = await measure({ ...cfg, rounds }, created, createdGetMany);
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

async function measure(
  cfg: BenchConfig & { rounds: number },
  created: string[],
  createdGetMany: string[],
): Promise<BenchReport> {
  const phase = cfg.phase ?? (() => noProgress);
  const log = cfg.log ?? (() => {});
  const rss = new RssSampler();
  const fresh = (n: number, into: string[] = created): string[] => {
    const ids = taskIds(n);
    into.push(...ids);
    return ids;
  };

  try {
    // 1-3. Both sides, each client open across every round.
    const backend = await cfg.open(cfg.url);
    const times: RoundTimes[] = [];
    let latencies: number[];
    try {
      const client = isAmqp(cfg.url)
        ? await RawAmqp.open({
            url: cfg.url,
            exchange: cfg.exchange,
            persistent: cfg.persistent,
            expires: cfg.expires,
            concurrency: cfg.concurrency,
          })
        : null;
      try {
        log('backend: warm-up');
        const warm = fresh(Math.min(WARMUP, cfg.n));
        await storeAll(backend, warm, cfg.concurrency);
        await collectAll(backend, warm, cfg.timeoutMs);
        if (client !== null) {
          log('amqplib: warm-up');
          const rawWarm = fresh(Math.min(WARMUP, cfg.n));
          await client.store(rawWarm, valueFor);
          await client.collect(rawWarm, cfg.timeoutMs);
        }
        for (let r = 1; r <= cfg.rounds; r++) {
          const tag = `r${r}/${cfg.rounds}`;
          const ours = await backendRound(backend, fresh(cfg.n), cfg, (label, total) =>
            phase(`${label} ${tag}`, total),
          );
          log(
            `backend ${tag}: store ${rate(cfg.n, ours.storeMs)}/s, collect ${rate(cfg.n, ours.collectMs)}/s`,
          );
          let bare: SideTimes | null = null;
          if (client !== null) {
            bare = await rawRound(client, fresh(cfg.n), cfg);
            log(
              `amqplib ${tag}: store ${rate(cfg.n, bare.storeMs)}/s, collect ${rate(cfg.n, bare.collectMs)}/s`,
            );
          }
          times.push({ backend: ours, raw: bare });
        }
      } finally {
        await client?.close();
      }

      // waitFor consumes its result, so each sample gets a result of its own.
      log(`backend: ${cfg.samples} waitFor samples`);
      const sampleIds = fresh(cfg.samples);
      await storeAll(backend, sampleIds, cfg.concurrency);
      latencies = await waitForLatencies(backend, sampleIds);
    } finally {
      await backend.close();
    }
    const lat = latencySummary(latencies);
    rss.sample();
    const mainPeak = rss.peakMb;

    // 4. getMany over many ids: its own peak.
    let getmany: Pick<
      BenchReport,
      'getmany_n' | 'getmany_per_s' | 'getmany_rss_mb' | 'getmany_store_rss_mb'
    > = {};
    if (cfg.getmanyN > 0) {
      rss.reset();
      const gm = await cfg.open(cfg.getmanyUrl);
      try {
        const ids = fresh(cfg.getmanyN, createdGetMany);
        const storeBar = phase('store', cfg.getmanyN);
        await storeAll(gm, ids, cfg.concurrency, () => storeBar.increment()).finally(() => storeBar.stop());
        const storePeak = rss.peakMb;
        const child = await cfg.getmanyChild?.(ids);
        let collected: { ms: number; received: number };
        if (child !== undefined) {
          log(`getMany over ${cfg.getmanyN} ids in a child process`);
          collected = child;
        } else {
          const bar = phase('getMany', cfg.getmanyN);
          // No verification map here: the phase measures what a plain getMany caller holds.
          collected = await collectAll(gm, ids, cfg.timeoutMs, () => bar.increment(), false).finally(() =>
            bar.stop(),
          );
        }
        if (collected.received !== cfg.getmanyN) {
          throw new Error(
            `getMany lost results: ${cfg.getmanyN - collected.received} missing of ${cfg.getmanyN}`,
          );
        }
        getmany = {
          getmany_n: cfg.getmanyN,
          getmany_per_s: rate(cfg.getmanyN, collected.ms),
          getmany_rss_mb: child?.peakRssMb ?? rss.peakMb,
          ...(child === undefined ? {} : { getmany_store_rss_mb: storePeak }),
        };
      } finally {
        await gm.close();
      }
    }
    rss.stop();

    const summary = summarizeRounds(cfg.n, times);
    return {
      n: cfg.n,
      concurrency: cfg.concurrency,
      samples: cfg.samples,
      rounds: summary.rounds,
      store_per_s: summary.store_per_s,
      collect_per_s: summary.collect_per_s,
      raw_store_per_s: summary.raw_store_per_s,
      raw_collect_per_s: summary.raw_collect_per_s,
      store_ratio: summary.store_ratio,
      collect_ratio: summary.collect_ratio,
      collect_teardown_ms: summary.collect_teardown_ms,
      raw_collect_teardown_ms: summary.raw_collect_teardown_ms,
      per_round: summary.per_round,
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

/** Waits `ms` (nothing for 0 or undefined): see {@link BenchConfig.settleMs}. */
function settle(ms: number | undefined): Promise<void> {
  return ms === undefined || ms <= 0 ? Promise.resolve() : sleep(ms);
}

/** One backend round: store the ids, collect them with one getMany, check every value. */
async function backendRound(
  backend: AMQPBackend,
  ids: readonly string[],
  cfg: Pick<BenchConfig, 'concurrency' | 'timeoutMs' | 'settleMs'>,
  phase: (label: string, total: number) => PhaseProgress,
): Promise<SideTimes> {
  const n = ids.length;
  await settle(cfg.settleMs);
  const storeBar = phase('store', n);
  const storeMs = await storeAll(backend, ids, cfg.concurrency, () => storeBar.increment()).finally(() =>
    storeBar.stop(),
  );
  await settle(cfg.settleMs);
  const collectBar = phase('collect', n);
  const collected = await collectAll(backend, ids, cfg.timeoutMs, () => collectBar.increment()).finally(() =>
    collectBar.stop(),
  );
  if (collected.received !== n || collected.wrong !== 0) {
    throw new Error(
      `backend collect lost results: ${n - collected.received} missing, ${collected.wrong} wrong out of ${n}`,
    );
  }
  return { storeMs, collectMs: collected.ms, teardownMs: collected.teardownMs };
}

/** One bare-amqplib round: store the ids, collect them, check none is missing. */
async function rawRound(
  client: RawAmqp,
  ids: readonly string[],
  cfg: Pick<BenchConfig, 'timeoutMs' | 'settleMs'>,
): Promise<SideTimes> {
  const n = ids.length;
  await settle(cfg.settleMs);
  const storeMs = await client.store(ids, valueFor);
  await settle(cfg.settleMs);
  const collected = await client.collect(ids, cfg.timeoutMs);
  if (collected.received !== n) {
    throw new Error(`bare amqplib collect lost results: ${n - collected.received} missing of ${n}`);
  }
  return { storeMs, collectMs: collected.ms, teardownMs: collected.teardownMs };
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
