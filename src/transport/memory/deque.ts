/**
 * A growable ring-buffer double-ended queue. The embedded broker keeps every queue's
 * ready messages in one; `Array.prototype.shift` is O(n) on large arrays, which would make
 * a backlog of 100k messages quadratic to drain.
 *
 * @module
 */

/**
 * Double-ended queue with amortised O(1) push/shift at both ends.
 *
 * @example
 * ```ts
 * const d = new Deque<number>();
 * d.push(1); d.unshift(0);
 * d.shift(); // 0
 * ```
 */
export class Deque<T> {
  private buffer: Array<T | undefined>;
  private head = 0;
  private count = 0;

  /**
   * @param capacity Initial capacity, rounded up to a power of two. @default 16
   */
  constructor(capacity = 16) {
    let size = 16;
    while (size < capacity) size *= 2;
    this.buffer = new Array<T | undefined>(size);
  }

  /** Number of items held. */
  get length(): number {
    return this.count;
  }

  /** Appends at the tail. */
  push(item: T): void {
    if (this.count === this.buffer.length) this.grow();
    this.buffer[(this.head + this.count) & (this.buffer.length - 1)] = item;
    this.count++;
  }

  /** Prepends at the head. */
  unshift(item: T): void {
    if (this.count === this.buffer.length) this.grow();
    this.head = (this.head - 1 + this.buffer.length) & (this.buffer.length - 1);
    this.buffer[this.head] = item;
    this.count++;
  }

  /** Removes and returns the head item, or undefined when empty. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.buffer[this.head];
    // Drop the reference so a consumed message body can be collected.
    this.buffer[this.head] = undefined;
    this.head = (this.head + 1) & (this.buffer.length - 1);
    this.count--;
    return item;
  }

  /** The head item without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.buffer[this.head];
  }

  /** Removes every item. */
  clear(): void {
    this.buffer = new Array<T | undefined>(16);
    this.head = 0;
    this.count = 0;
  }

  /** Iterates head to tail. */
  *[Symbol.iterator](): IterableIterator<T> {
    const mask = this.buffer.length - 1;
    for (let i = 0; i < this.count; i++) yield this.buffer[(this.head + i) & mask] as T;
  }

  private grow(): void {
    const old = this.buffer;
    const next = new Array<T | undefined>(old.length * 2);
    const mask = old.length - 1;
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) & mask];
    this.buffer = next;
    this.head = 0;
  }
}
