/**
 * The revoked task ids a worker remembers (Celery's `worker_state.revoked`, a LimitedSet of
 * at most 50,000 ids; once full, ids older than 3 hours go first, then the oldest): a revoked
 * task that arrives later is not run but stored REVOKED.
 *
 * @module
 */

/** Celery's `REVOKES_MAX`. */
export const REVOKES_MAX = 50_000;
/** Celery's `REVOKE_EXPIRES`, in seconds. */
export const REVOKE_EXPIRES = 10_800;

/**
 * A bounded set of ids with insertion times: past `maxSize` the oldest go first, and ids
 * older than `expiresMs` are dropped whenever the set is full.
 *
 * @example
 * ```ts
 * const revoked = new RevokedSet();
 * revoked.add('id');
 * revoked.has('id'); // true
 * ```
 */
export class RevokedSet {
  /** Most ids kept. @default 50 000 */
  readonly maxSize: number;
  /** How long an id is kept when the set is full, ms. @default 3 hours */
  readonly expiresMs: number;
  /** id -> insertion time (performance.now ms); Map order is insertion order. */
  readonly #ids = new Map<string, number>();

  constructor(maxSize = REVOKES_MAX, expiresMs = REVOKE_EXPIRES * 1000) {
    this.maxSize = maxSize;
    this.expiresMs = expiresMs;
  }

  /** Number of ids kept. */
  get size(): number {
    return this.#ids.size;
  }

  /** True when the id was revoked. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Adds (or refreshes) an id, dropping the oldest past the bound. */
  add(id: string, at = performance.now()): void {
    this.#ids.delete(id);
    this.#ids.set(id, at);
    if (this.#ids.size >= this.maxSize) this.purge(at);
  }

  /** As Celery's `LimitedSet.purge`: expired ids go, then the oldest until under the bound. */
  purge(now = performance.now()): void {
    for (const [id, at] of this.#ids) {
      if (now - at <= this.expiresMs && this.#ids.size <= this.maxSize) break;
      this.#ids.delete(id);
    }
  }

  /** The ids, oldest first. */
  ids(): string[] {
    return [...this.#ids.keys()];
  }

  /**
   * The set as Celery's mingle `hello` reply sends it: `{id: [inserted, id]}` with a float
   * monotonic timestamp in seconds (Python's LimitedSet refuses an int there).
   */
  toHello(): Record<string, [number, string]> {
    const out: Record<string, [number, string]> = {};
    for (const [id, at] of this.#ids) {
      const seconds = at / 1000;
      // JSON writes 12.0 as 12, which Python reads back as an int: keep a fraction.
      out[id] = [Number.isInteger(seconds) ? seconds + 1e-6 : seconds, id];
    }
    return out;
  }
}
