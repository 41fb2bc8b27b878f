/**
 * Small measurement helpers for `demo` and `bench`: bounded concurrency, percentiles,
 * medians, rates and a peak-RSS sampler.
 *
 * @module
 */

/**
 * Runs `task(i)` for i in [0, count) with at most `concurrency` in flight; rejects on the
 * first failure (the remaining workers stop picking up new items).
 *
 * @example
 * ```ts
 * await pool(1000, 64, (i) => backend.storeResult(ids[i]!, i, 'SUCCESS'));
 * ```
 */
export async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
}

/**
 * The p-th percentile (0-100) of samples, nearest-rank; NaN for no samples.
 *
 * @example
 * ```ts
 * percentile([1, 2, 3, 4], 50); // 2
 * ```
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/**
 * The median of samples (the mean of the two middle ones for an even count), null for none.
 * Repeated runs report it rather than the mean, so that one run slowed by a noisy broker
 * does not move the figure.
 *
 * @example
 * ```ts
 * median([3, 1, 2]); // 2
 * median([1, 2, 3, 4]); // 2.5
 * ```
 */
export function median(samples: readonly number[]): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] as number;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] as number) + upper) / 2;
}

/**
 * Items per second, rounded to a whole number.
 *
 * @example
 * ```ts
 * rate(4000, 2000); // 2000
 * ```
 */
export function rate(count: number, ms: number): number {
  return ms <= 0 ? 0 : Math.round((count * 1000) / ms);
}

/** Rounds to `digits` decimals (JSON figures stay readable). */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * Samples the process RSS every `intervalMs` and remembers the peak. The timer is unref'd
 * so a forgotten sampler never keeps the process alive.
 *
 * @example
 * ```ts
 * const rss = new RssSampler(); ...; rss.stop(); rss.peakMb;
 * ```
 */
export class RssSampler {
  #peak = process.memoryUsage.rss();
  readonly #timer: NodeJS.Timeout;

  constructor(intervalMs = 25) {
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Takes one sample now (call at phase ends, where the peak often is). */
  sample(): void {
    this.#peak = Math.max(this.#peak, process.memoryUsage.rss());
  }

  /** Starts counting a new peak from the current RSS. */
  reset(): void {
    this.#peak = process.memoryUsage.rss();
  }

  /** Peak RSS seen so far, in MB. */
  get peakMb(): number {
    this.sample();
    return round(this.#peak / (1024 * 1024), 1);
  }

  stop(): void {
    this.sample();
    clearInterval(this.#timer);
  }
}
