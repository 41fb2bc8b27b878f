/**
 * Prefetch accounting (basic.qos) for the embedded broker. RabbitMQ applies a
 * `global=false` prefetch to each consumer created afterwards and a `global=true` one to
 * the channel as a whole; a delivery needs room in both.
 *
 * @module
 */

/**
 * Counts unacknowledged deliveries against a limit; a limit of 0 means unlimited.
 *
 * @example
 * ```ts
 * const c = new PrefetchCounter(1);
 * c.take(); c.hasCapacity; // false
 * c.release(); c.hasCapacity; // true
 * ```
 */
export class PrefetchCounter {
  /** Maximum unacked deliveries; 0 = no limit. @default 0 */
  limit: number;
  /** Deliveries taken and not yet released. */
  unacked = 0;

  constructor(limit = 0) {
    this.limit = limit;
  }

  /** True when one more delivery fits. */
  get hasCapacity(): boolean {
    return this.limit === 0 || this.unacked < this.limit;
  }

  /** True when the counter was full (so that a release frees room someone may be waiting for). */
  get full(): boolean {
    return this.limit !== 0 && this.unacked >= this.limit;
  }

  /** Counts one delivery. */
  take(): void {
    this.unacked++;
  }

  /** Uncounts one delivery (ack, reject, requeue). */
  release(): void {
    if (this.unacked > 0) this.unacked--;
  }
}
