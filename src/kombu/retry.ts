/**
 * Retry policies and waits, following kombu's `retry_over_time` and `fxrange`.
 *
 * Every wait here takes a timeout and an AbortSignal and leaves no timer or listener behind
 * once it settles.
 *
 * @module
 */
import { AbortError, CeleryAmqpError, TimeoutError } from '../errors.js';
import { onAbort } from './abort-listener.js';

/**
 * How often and how fast an operation is retried. Durations in milliseconds.
 *
 * @example
 * ```ts
 * const policy: RetryPolicy = { maxRetries: 20, intervalStart: 0, intervalStep: 1000, intervalMax: 1000 };
 * ```
 */
export interface RetryPolicy {
  /** Retries after the first attempt; `undefined` retries forever. @default undefined */
  maxRetries?: number;
  /** First sleep. @default 2000 */
  intervalStart?: number;
  /** Added to the sleep after each retry. @default 2000 */
  intervalStep?: number;
  /** Cap on the growth: sleeps never exceed `intervalStart + intervalMax`. @default 30000 */
  intervalMax?: number;
}

/** kombu's defaults, in milliseconds. */
export const DEFAULT_RETRY_POLICY: Readonly<Required<Omit<RetryPolicy, 'maxRetries'>>> = Object.freeze({
  intervalStart: 2000,
  intervalStep: 2000,
  intervalMax: 30000,
});

/**
 * The sleeps between attempts: `start, start+step, ...` capped at `start+max`, repeating the
 * last one forever (kombu's `fxrange(start, start + max, step, repeatlast=True)`).
 *
 * @param policy - The policy; missing fields take kombu's defaults.
 * @returns An endless iterator of sleeps in milliseconds.
 * @example
 * ```ts
 * const it = retryIntervals({ intervalStart: 0, intervalStep: 1000, intervalMax: 1000 });
 * // 0, 1000, 1000, 1000, ...
 * ```
 */
export function* retryIntervals(policy: RetryPolicy = {}): Generator<number, never, undefined> {
  const start = policy.intervalStart ?? DEFAULT_RETRY_POLICY.intervalStart;
  const step = policy.intervalStep ?? DEFAULT_RETRY_POLICY.intervalStep;
  const stop = start + (policy.intervalMax ?? DEFAULT_RETRY_POLICY.intervalMax);
  // fxrange yields while current <= stop (inclusive), then repeats the last value yielded.
  let current = start;
  while (current <= stop) {
    yield current;
    current += step;
  }
  const last = current - step;
  for (;;) yield last;
}

/** Options of a wait. */
export interface WaitOptions {
  /** Deadline in milliseconds; `undefined` waits without a deadline. @default undefined */
  timeout?: number | undefined;
  /** Cancels the wait with an AbortError. @default undefined */
  signal?: AbortSignal | undefined;
}

/** The AbortError for a signal, keeping its reason as the cause. */
export function abortError(signal: AbortSignal): AbortError {
  return signal.reason instanceof AbortError
    ? signal.reason
    : new AbortError(undefined, { cause: signal.reason });
}

/**
 * Sleeps `ms` milliseconds, or rejects with AbortError when the signal fires first.
 *
 * @example
 * ```ts
 * await sleep(100, { signal: controller.signal });
 * ```
 */
export function sleep(ms: number, options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted === true) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unwatch();
      resolve();
    }, ms);
    const unwatch =
      signal === undefined
        ? () => undefined
        : onAbort(signal, () => {
            clearTimeout(timer);
            reject(abortError(signal));
          });
  });
}

/**
 * Races a promise against a deadline and a signal. The promise itself is not cancelled (its
 * rejection is observed so it never goes unhandled); `onCancel` runs when the wait gives up.
 *
 * @param promise - What to wait for.
 * @param options - `timeout` (ms) and `signal`.
 * @param onCancel - Called once when the deadline or the signal wins.
 * @returns The promise's value.
 * @throws TimeoutError at the deadline ("The operation timed out."), AbortError on abort.
 * @example
 * ```ts
 * const ok = await withDeadline(queue.declare(), { timeout: 5000 });
 * ```
 */
export function withDeadline<T>(
  promise: Promise<T>,
  options: WaitOptions = {},
  onCancel?: (reason: Error) => void,
): Promise<T> {
  const { timeout, signal } = options;
  if (timeout === undefined && signal === undefined) return promise;
  if (signal?.aborted === true) {
    promise.catch(() => undefined);
    const err = abortError(signal);
    onCancel?.(err);
    return Promise.reject(err);
  }
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let unwatch = (): void => undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      unwatch();
    };
    const giveUp = (err: Error): void => {
      cleanup();
      promise.catch(() => undefined);
      onCancel?.(err);
      reject(err);
    };
    if (timeout !== undefined) timer = setTimeout(() => giveUp(new TimeoutError()), Math.max(0, timeout));
    if (signal !== undefined) unwatch = onAbort(signal, () => giveUp(abortError(signal)));
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (err: unknown) => {
        cleanup();
        reject(err);
      },
    );
  });
}

/**
 * True for errors reconnecting may cure: a {@link CeleryAmqpError} marked recoverable.
 *
 * @example
 * ```ts
 * isRecoverable(new ConnectionError('lost')); // true
 * ```
 */
export function isRecoverable(err: unknown): boolean {
  return err instanceof CeleryAmqpError && err.recoverable;
}

/** Options of {@link retryOverTime}. */
export interface RetryOverTimeOptions {
  /** @default kombu's defaults, retrying forever */
  policy?: RetryPolicy | undefined;
  /** Which errors are retried; others are thrown at once. @default isRecoverable */
  isRecoverable?: ((err: unknown) => boolean) | undefined;
  /** Called before each sleep with the error, the retry number (1-based) and the sleep. */
  onRetry?: ((err: unknown, attempt: number, sleepMs: number) => void | Promise<void>) | undefined;
  /** Stops retrying (and sleeping) with an AbortError. @default undefined */
  signal?: AbortSignal | undefined;
}

/**
 * Calls `fn` until it succeeds, sleeping per the policy between attempts (kombu's
 * `retry_over_time`). Non-recoverable errors and the error after the last retry are thrown.
 *
 * @param fn - The operation; receives the attempt number (0 for the first call).
 * @returns The first successful result.
 * @example
 * ```ts
 * const conn = await retryOverTime(() => transport.connect(address), {
 *   policy: { maxRetries: 3, intervalStart: 100 },
 *   onRetry: (err, n, ms) => console.warn(`retry ${n} in ${ms} ms`, err),
 * });
 * ```
 */
export async function retryOverTime<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOverTimeOptions = {},
): Promise<T> {
  const policy = options.policy ?? {};
  const recoverable = options.isRecoverable ?? isRecoverable;
  const intervals = retryIntervals(policy);
  const { signal } = options;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted === true) throw abortError(signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (!recoverable(err)) throw err;
      if (policy.maxRetries !== undefined && attempt >= policy.maxRetries) throw err;
      const ms = intervals.next().value;
      await options.onRetry?.(err, attempt + 1, ms);
      await sleep(ms, { signal });
    }
  }
}
