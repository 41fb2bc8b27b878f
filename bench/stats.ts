/**
 * Small measurement helpers of the bench: percentiles, medians and a peak-RSS sampler, with
 * the bounded concurrency, rates and rounding it shares with `celery-amqp demo`.
 *
 * @module
 */
import { round } from '../src/cli/demo-runner.js';

export { pool, rate, round } from '../src/cli/demo-runner.js';

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
