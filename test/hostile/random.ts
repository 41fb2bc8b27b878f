/**
 * A small seeded generator (sfc32) for the hostile-peer run: the same seed gives the same
 * cases on every machine, so a failing case is replayed by its seed and index.
 *
 * @module
 */

/**
 * Seeded pseudo-random numbers and the picks the case generator makes with them.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * rng.int(10); // 0..9, the same for seed 42 every time
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** A float in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** `n` random bytes. */
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** A string of `n` characters drawn from `alphabet` (printable ASCII by default). */
  string(n: number, alphabet?: string): string {
    let out = '';
    for (let i = 0; i < n; i++) {
      out +=
        alphabet === undefined ? String.fromCharCode(32 + this.int(95)) : alphabet[this.int(alphabet.length)];
    }
    return out;
  }

  /** A string of any UTF-16 code units (lone surrogates and control characters included). */
  unicode(n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += String.fromCharCode(this.bool(0.7) ? this.int(128) : this.int(65536));
    return out;
  }
}
