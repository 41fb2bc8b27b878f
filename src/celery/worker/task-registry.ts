/**
 * Registered tasks: a handler and the per-task options Celery's `@app.task(...)` takes, with
 * Celery's names (camelCased) and units (seconds).
 *
 * @module
 */
import { ArgumentError } from '../../errors.js';
import { TaskError } from '../exceptions.js';
import type { TaskHandler } from './context.js';
import { parseRate } from './rate-limit.js';

/** An error class, or a type name matched against `err.name` / a TaskError's `excType`. */
export type ErrorMatcher = string | (abstract new (...args: never[]) => Error);

/**
 * Per-task options, as Celery's task attributes.
 *
 * @example
 * ```ts
 * const opts: TaskOptions = { autoretryFor: [TypeError], retryBackoff: true, maxRetries: 5, timeLimit: 30 };
 * ```
 */
export interface TaskOptions {
  /** Retries allowed before MaxRetriesExceededError; null for no limit. @default 3 */
  maxRetries?: number | null | undefined;
  /** Seconds before a retry when neither countdown nor eta is given. @default 180 */
  defaultRetryDelay?: number | undefined;
  /** Errors that retry the task by themselves (Celery's `autoretry_for`). @default [] */
  autoretryFor?: readonly ErrorMatcher[] | undefined;
  /**
   * Exponential backoff for automatic retries: true (factor 1 s) or a factor in seconds;
   * the countdown is `factor * 2 ** retries`, capped by retryBackoffMax. @default false
   */
  retryBackoff?: boolean | number | undefined;
  /** Largest backoff countdown, seconds. @default 600 */
  retryBackoffMax?: number | undefined;
  /** Randomize the backoff countdown between 0 and its value ("full jitter"). @default true */
  retryJitter?: boolean | undefined;
  /** Hard time limit in seconds when the message has none; null for none. @default the worker's */
  timeLimit?: number | null | undefined;
  /** Soft time limit in seconds when the message has none; null for none. @default the worker's */
  softTimeLimit?: number | null | undefined;
  /** Rate limit: `'10/s'`, `'100/m'`, `'5/h'` or tasks per second; null for none. @default null */
  rateLimit?: string | number | null | undefined;
  /** Ack after the result is stored (true) or when the task starts (false). @default the worker's */
  acksLate?: boolean | undefined;
  /** Requeue rather than fail an acks-late task the worker had to abandon. @default the worker's */
  rejectOnWorkerLost?: boolean | undefined;
  /** Store STARTED before running. @default the worker's */
  trackStarted?: boolean | undefined;
  /** Store nothing for this task. @default false */
  ignoreResult?: boolean | undefined;
}

/**
 * A handler with its options, for {@link Worker} `tasks` or a `celery-amqp worker` module.
 *
 * @example
 * ```ts
 * export const fetch: TaskDefinition = { handler: ([url]) => get(String(url)), autoretryFor: ['ConnectionError'] };
 * ```
 */
export interface TaskDefinition extends TaskOptions {
  /** The implementation. */
  handler: TaskHandler;
  /** The registered name, when it differs from the key it is given under. @default the key */
  name?: string | undefined;
}

function seconds(v: unknown, what: string, task: string, nullable: boolean): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === null && nullable) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new ArgumentError(`task ${task}: ${what} must be a non-negative number of seconds`);
  }
  return v;
}

/**
 * A task the worker knows: its handler and its options, resolved. Limits and the rate limit
 * can be changed at run time (`celery control rate_limit` / `time_limit`).
 *
 * @example
 * ```ts
 * worker.tasks.get('tasks.add')?.maxRetries; // 3
 * ```
 */
export class RegisteredTask {
  readonly name: string;
  readonly handler: TaskHandler;
  readonly maxRetries: number | null;
  readonly defaultRetryDelay: number;
  readonly autoretryFor: readonly ErrorMatcher[];
  /** Backoff factor in seconds, 0 for none. */
  readonly retryBackoff: number;
  readonly retryBackoffMax: number;
  readonly retryJitter: boolean;
  timeLimit: number | null | undefined;
  softTimeLimit: number | null | undefined;
  /** The rate limit as given (shown by `inspect registered`), or null. */
  rateLimit: string | number | null;
  readonly acksLate: boolean | undefined;
  readonly rejectOnWorkerLost: boolean | undefined;
  readonly trackStarted: boolean | undefined;
  readonly ignoreResult: boolean;

  /**
   * @throws ArgumentError naming the task for a bad option.
   */
  constructor(name: string, definition: TaskHandler | TaskDefinition) {
    if (typeof name !== 'string' || name === '') throw new ArgumentError('a task needs a non-empty name');
    const def: TaskDefinition = typeof definition === 'function' ? { handler: definition } : definition;
    if (typeof def.handler !== 'function')
      throw new ArgumentError(`task ${name}: handler must be a function`);
    this.name = name;
    this.handler = def.handler;
    const max = def.maxRetries;
    if (max !== undefined && max !== null && (!Number.isInteger(max) || max < 0)) {
      throw new ArgumentError(`task ${name}: maxRetries must be a non-negative integer or null`);
    }
    this.maxRetries = max === undefined ? 3 : max;
    this.defaultRetryDelay = seconds(def.defaultRetryDelay, 'defaultRetryDelay', name, false) ?? 180;
    this.autoretryFor = [...(def.autoretryFor ?? [])];
    const backoff = def.retryBackoff ?? false;
    this.retryBackoff =
      backoff === true ? 1 : backoff === false ? 0 : (seconds(backoff, 'retryBackoff', name, false) ?? 0);
    this.retryBackoffMax = seconds(def.retryBackoffMax, 'retryBackoffMax', name, false) ?? 600;
    this.retryJitter = def.retryJitter ?? true;
    this.timeLimit = seconds(def.timeLimit, 'timeLimit', name, true);
    this.softTimeLimit = seconds(def.softTimeLimit, 'softTimeLimit', name, true);
    this.rateLimit = def.rateLimit ?? null;
    try {
      parseRate(this.rateLimit);
    } catch (err) {
      throw new ArgumentError(`task ${name}: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
    this.acksLate = def.acksLate;
    this.rejectOnWorkerLost = def.rejectOnWorkerLost;
    this.trackStarted = def.trackStarted;
    this.ignoreResult = def.ignoreResult ?? false;
  }

  /** True when `err` is one of {@link autoretryFor}. */
  autoretries(err: unknown): boolean {
    for (const m of this.autoretryFor) {
      if (typeof m === 'string') {
        if (err instanceof TaskError ? err.excType === m : err instanceof Error && err.name === m)
          return true;
      } else if (err instanceof m) return true;
    }
    return false;
  }

  /**
   * Celery's `get_exponential_backoff_interval`: `factor * 2 ** retries` seconds, capped,
   * then with full jitter a random whole number of seconds from 0 to that.
   */
  backoff(retries: number, random: () => number = Math.random): number {
    const countdown = Math.min(this.retryBackoffMax, this.retryBackoff * 2 ** retries);
    return this.retryJitter ? Math.floor(random() * (Math.floor(countdown) + 1)) : Math.max(0, countdown);
  }
}
