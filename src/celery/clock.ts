/**
 * The Lamport clock Celery keeps per app (kombu's `LamportClock`): events and remote-control
 * messages carry its value, and every message received moves it past the sender's, so
 * monitors can order events from different hosts without synchronized wall clocks.
 *
 * @module
 */

/**
 * A logical clock: `forward()` before sending, `adjust(theirs)` on receiving.
 *
 * @example
 * ```ts
 * const clock = new LamportClock();
 * clock.forward(); // 1
 * clock.adjust(10); // 11
 * ```
 */
export class LamportClock {
  /** The current value. @default 0 */
  value: number;

  constructor(initial = 0) {
    this.value = initial;
  }

  /** Ticks for an event sent now and returns the new value. */
  forward(): number {
    return ++this.value;
  }

  /**
   * Moves past a received value: `max(mine, theirs) + 1`. A value that is not a finite
   * number (a peer without a clock sends 0 or nothing) only ticks.
   */
  adjust(other: unknown): number {
    const theirs = typeof other === 'number' && Number.isFinite(other) ? other : 0;
    this.value = Math.max(this.value, theirs) + 1;
    return this.value;
  }

  /** The value as Celery prints it (`str(clock)`). */
  toString(): string {
    return String(this.value);
  }
}
