/**
 * One wait's deadline, abort signal and interval callback, with nothing left behind once
 * it is disposed.
 *
 * @module
 */
import { TimeoutError } from '../errors.js';
import { onAbort } from '../kombu/abort-listener.js';
import { abortError } from '../kombu/retry.js';
import type { WaitOptions } from '../kombu/retry.js';

/** Options of a {@link WaitControl}: the `timeout` (ms from now) and `signal` of the wait. */
export interface WaitControlOptions extends WaitOptions {
  /** Called every {@link WaitControlOptions.intervalMs} while waiting. @default undefined */
  onInterval?: (() => void) | undefined;
  /** Period of `onInterval`, in ms. @default 1000 */
  intervalMs?: number | undefined;
  /** Builds the timeout error. @default TimeoutError("The operation timed out.") */
  timeoutError?: (() => Error) | undefined;
}

/** The error a wait ends with when an internal signal (a backend closing) fires: its reason. */
function reasonOf(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : abortError(signal);
}

/**
 * Turns a deadline and signals into one rejecting promise, and races work against it.
 * The deadline is a timer (exact), not a periodic check.
 *
 * @example
 * ```ts
 * const ctl = new WaitControl({ timeout: 1000, signal });
 * try { return await ctl.race(work()); } finally { ctl.dispose(); }
 * ```
 */
export class WaitControl {
  /** Set once the deadline passed or a signal fired: background work must back off. */
  cancelled: Error | undefined;
  readonly #failed: Promise<never>;
  #fail!: (err: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #interval: NodeJS.Timeout | undefined;
  /** Stops watching each signal. */
  readonly #unwatch: Array<() => void> = [];
  readonly #onInterval: (() => void) | undefined;
  /** Aborted (with the error) when the wait is cancelled; made on first use. */
  #controller: AbortController | undefined;
  /** What may explain a timeout (see {@link note}). */
  #cause: Error | undefined;

  /**
   * @param options - Deadline, signal, interval callback.
   * @param extraSignals - Internal signals (e.g. the backend closing): the wait ends with
   *   their reason when it is an Error, where the caller's own signal gives an AbortError.
   */
  constructor(options: WaitControlOptions, ...extraSignals: Array<AbortSignal | undefined>) {
    this.#failed = new Promise<never>((_, reject) => {
      this.#fail = reject;
    });
    this.#failed.catch(() => undefined);
    this.#onInterval = options.onInterval;
    this.#watch(options.signal, abortError);
    for (const s of extraSignals) this.#watch(s, reasonOf);
    if (options.timeout !== undefined && this.cancelled === undefined) {
      const make = options.timeoutError ?? (() => new TimeoutError());
      this.#timer = setTimeout(() => this.cancel(this.#explained(make())), Math.max(0, options.timeout));
    }
    if (options.onInterval !== undefined && this.cancelled === undefined) {
      this.#interval = setInterval(() => this.interval(), options.intervalMs ?? 1000);
    }
  }

  #watch(signal: AbortSignal | undefined, toError: (s: AbortSignal) => Error): void {
    if (signal === undefined || this.cancelled !== undefined) return;
    if (signal.aborted) {
      this.cancel(toError(signal));
      return;
    }
    // Shared per signal: many waits on one signal must not pile listeners on it.
    this.#unwatch.push(onAbort(signal, () => this.cancel(toError(signal))));
  }

  /**
   * Notes what the waiting side learned that may explain a timeout (a result queue lost
   * with its node): a TimeoutError at the deadline then names it and carries it as `cause`.
   * The first note wins.
   */
  note(cause: Error): void {
    this.#cause ??= cause;
  }

  #explained(err: Error): Error {
    const cause = this.#cause;
    if (cause === undefined || !(err instanceof TimeoutError)) return err;
    return new TimeoutError(`${err.message} ${cause.message}`, { cause });
  }

  /** Rejects the wait with `err` (first call wins). */
  cancel(err: Error): void {
    if (this.cancelled !== undefined) return;
    this.cancelled = err;
    this.#fail(err);
    this.#clearTimers();
    this.#controller?.abort(err);
  }

  /**
   * A signal that aborts, with the wait's error as its reason, when the wait is cancelled:
   * hands the deadline and the signals on to work that takes only a signal.
   */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.cancelled !== undefined) this.#controller.abort(this.cancelled);
    }
    return this.#controller.signal;
  }

  /** Calls the interval callback now; a throwing callback fails the wait. */
  interval(): void {
    if (this.#onInterval === undefined || this.cancelled !== undefined) return;
    try {
      this.#onInterval();
    } catch (err) {
      this.cancel(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** `work`, unless the deadline or a signal comes first. `work`'s rejection is always observed. */
  race<T>(work: Promise<T>): Promise<T> {
    work.catch(() => undefined);
    if (this.cancelled !== undefined) return Promise.reject(this.cancelled);
    return Promise.race([work, this.#failed]);
  }

  /** A promise that rejects when the wait is cancelled (never resolves). */
  get failed(): Promise<never> {
    return this.#failed;
  }

  #clearTimers(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#interval !== undefined) clearInterval(this.#interval);
    this.#timer = undefined;
    this.#interval = undefined;
  }

  /** Clears the timers and listeners. Idempotent. */
  dispose(): void {
    this.#clearTimers();
    for (const stop of this.#unwatch.splice(0)) stop();
  }
}
