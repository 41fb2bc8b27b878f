/**
 * The backend's result cache with Celery's `result_cache_max` semantics.
 *
 * @module
 */
import { ArgumentError } from '../errors.js';

/**
 * A least-recently-used cache of task results keyed by task id.
 *
 * The limit follows Celery's `result_cache_max` (3.1: `CELERY_MAX_CACHED_RESULTS`):
 * `-1` disables the cache (get always misses, set does nothing), `0` keeps everything,
 * `n > 0` keeps the `n` most recently used entries. Every operation is O(1): a Map's
 * insertion order is the recency order, and a hit is moved to the end.
 *
 * @example
 * ```ts
 * const cache = new ResultCache<TaskMeta>(100);
 * cache.set(taskId, meta);
 * cache.get(taskId); // meta
 * ```
 */
export class ResultCache<V> {
  readonly #entries = new Map<string, V>();
  readonly #limit: number;

  /**
   * @param limit - `-1` off, `0` unlimited, `n` most recent. @default -1 (Celery 4.x)
   * @throws {@link ArgumentError} when limit is not an integer ≥ -1.
   */
  constructor(limit = -1) {
    if (!Number.isSafeInteger(limit) || limit < -1) {
      throw new ArgumentError(`result cache limit must be an integer >= -1, got ${String(limit)}`);
    }
    this.#limit = limit;
  }

  /** The configured limit: -1 off, 0 unlimited, else the maximum size. */
  get limit(): number {
    return this.#limit;
  }

  /** True when the cache is disabled (limit -1). */
  get disabled(): boolean {
    return this.#limit === -1;
  }

  /** Number of entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The cached value, marking it most recently used; undefined on a miss.
   *
   * @example
   * ```ts
   * cache.get('abc') ?? fetch('abc');
   * ```
   */
  get(key: string): V | undefined {
    const entries = this.#entries;
    if (!entries.has(key)) return undefined;
    const value = entries.get(key) as V;
    // Re-insert to move the key to the most recent end.
    entries.delete(key);
    entries.set(key, value);
    return value;
  }

  /**
   * True when a value is cached for the key. Does not change recency.
   *
   * @example
   * ```ts
   * if (!cache.has(id)) await poll(id);
   * ```
   */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /**
   * Stores a value as the most recently used, evicting the least recently used entry when
   * over the limit. Does nothing when the cache is disabled.
   *
   * @example
   * ```ts
   * cache.set(id, meta);
   * ```
   */
  set(key: string, value: V): this {
    if (this.#limit === -1) return this;
    const entries = this.#entries;
    entries.delete(key);
    entries.set(key, value);
    if (this.#limit > 0 && entries.size > this.#limit) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    return this;
  }

  /**
   * Removes an entry; true when one was removed.
   *
   * @example
   * ```ts
   * cache.delete(id); // forget
   * ```
   */
  delete(key: string): boolean {
    return this.#entries.delete(key);
  }

  /**
   * Removes every entry.
   *
   * @example
   * ```ts
   * cache.clear();
   * ```
   */
  clear(): void {
    this.#entries.clear();
  }

  /**
   * Keys from least to most recently used.
   *
   * @example
   * ```ts
   * [...cache.keys()];
   * ```
   */
  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }
}
