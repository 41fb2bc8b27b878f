/**
 * Per-task rate limits as Celery's worker applies them: a token bucket of capacity 1 per
 * task type (kombu's `TokenBucket`), refilled at the task's `rate_limit`; a task that finds
 * the bucket empty waits, its message unacked, until a token is due.
 *
 * @module
 */
import { ArgumentError } from '../../errors.js';

const MODIFIERS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600 };

/**
 * Celery's `rate()`: `'10/s'`, `'100/m'`, `'2/h'`, or a number of tasks per second, to
 * tasks per second; 0 (or an empty value) means no limit.
 *
 * @throws ArgumentError for a string Celery would refuse (`'x/s'`, `'5/d'`).
 * @example
 * ```ts
 * parseRate('100/m'); // 1.6666666666666667
 * parseRate(null); // 0
 * ```
 */
export function parseRate(value: unknown): number {
  if (value === null || value === undefined || value === '' || value === 0 || value === false) return 0;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new ArgumentError(`invalid rate limit ${value}`);
    return value;
  }
  if (typeof value !== 'string') throw new ArgumentError(`invalid rate limit ${String(value)}`);
  const [ops = '', modifier = 's'] = value.split('/', 2);
  const per = MODIFIERS[modifier === '' ? 's' : modifier];
  const n = Number(ops.trim());
  if (per === undefined || ops.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new ArgumentError(`invalid rate limit string ${JSON.stringify(value)}`);
  }
  return n / per;
}

/**
 * A token bucket of capacity 1: one task per `1 / rate` seconds.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket(2); // 2 tasks/s
 * bucket.canConsume(); // true
 * bucket.expectedMs(); // ~500
 * ```
 */
export class TokenBucket<T> {
  /** Tasks per second. */
  readonly rate: number;
  /** Tasks waiting for a token, oldest first. */
  readonly waiting: T[] = [];
  /** The timer that drains {@link waiting}, when one is armed. */
  timer: NodeJS.Timeout | undefined;
  #tokens = 1;
  #stamp = performance.now();

  constructor(rate: number) {
    this.rate = rate;
  }

  #fill(): number {
    if (this.#tokens < 1) {
      const now = performance.now();
      this.#tokens = Math.min(1, this.#tokens + (this.rate * (now - this.#stamp)) / 1000);
      this.#stamp = now;
    }
    return this.#tokens;
  }

  /** Takes a token when one is there. */
  canConsume(): boolean {
    if (this.#fill() >= 1) {
      this.#tokens -= 1;
      this.#stamp = performance.now();
      return true;
    }
    return false;
  }

  /** Milliseconds until the next token. */
  expectedMs(): number {
    return ((1 - this.#fill()) / this.rate) * 1000;
  }
}

/**
 * Applies each task's rate limit: a task whose bucket is empty waits (message unacked) and is
 * handed to `submit` when its token is due; the buckets follow changes of the limit
 * (`celery control rate_limit`).
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter((req) => pool.submit(req));
 * if (!limiter.submit(req, '10/s')) pool.submit(req);
 * ```
 */
export class RateLimiter<T extends { readonly id: string }> {
  readonly #buckets = new Map<string, { limit: string | number; bucket: TokenBucket<T> }>();
  readonly #submit: (item: T) => void;

  constructor(submit: (item: T) => void) {
    this.#submit = submit;
  }

  /**
   * Passes `item` on now when its task has no limit or a token is there, else queues it.
   *
   * @returns false when the task has no limit (the caller passes it on itself).
   */
  submit(item: T, task: string, limit: string | number | null): boolean {
    if (limit === null || limit === 0 || limit === '') return false;
    let entry = this.#buckets.get(task);
    if (entry === undefined || entry.limit !== limit) {
      const rate = parseRate(limit);
      if (rate === 0) return false;
      const old = entry?.bucket;
      entry = { limit, bucket: new TokenBucket<T>(rate) };
      this.#buckets.set(task, entry);
      if (old !== undefined) {
        clearTimeout(old.timer);
        entry.bucket.waiting.push(...old.waiting);
      }
    }
    entry.bucket.waiting.push(item);
    this.#drain(entry.bucket);
    return true;
  }

  /** Tasks waiting for a token. */
  get size(): number {
    let n = 0;
    for (const { bucket } of this.#buckets.values()) n += bucket.waiting.length;
    return n;
  }

  /** Stops waiting for an item by id (a revoke) and returns it. */
  remove(id: string): T | undefined {
    for (const { bucket } of this.#buckets.values()) {
      const i = bucket.waiting.findIndex((x) => x.id === id);
      if (i >= 0) return bucket.waiting.splice(i, 1)[0];
    }
    return undefined;
  }

  /** Empties every bucket (shutdown) and returns what waited. */
  takeAll(): T[] {
    const out: T[] = [];
    for (const { bucket } of this.#buckets.values()) {
      clearTimeout(bucket.timer);
      bucket.timer = undefined;
      out.push(...bucket.waiting.splice(0));
    }
    return out;
  }

  #drain(bucket: TokenBucket<T>): void {
    if (bucket.timer !== undefined) return;
    while (bucket.waiting.length > 0) {
      if (!bucket.canConsume()) {
        bucket.timer = setTimeout(() => {
          bucket.timer = undefined;
          this.#drain(bucket);
        }, Math.ceil(bucket.expectedMs()));
        return;
      }
      const next = bucket.waiting.shift();
      if (next !== undefined) this.#submit(next);
    }
  }
}
