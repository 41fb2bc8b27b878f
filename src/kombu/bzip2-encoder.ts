/**
 * A bzip2 compressor (the .bz2 stream format of bzip2 1.0, as Python's `bz2.compress`
 * writes and reads it), for sending `application/x-bz2` bodies.
 *
 * Written here because npm has no well-kept bzip2 *encoder* that fits this library: the pure
 * JS one (compressjs) is GPL, and the WebAssembly builds of libbzip2 need an asynchronous
 * start and, for bzip2-wasm, set `globalThis.require`/`__dirname`. Decoding uses seek-bzip.
 *
 * Steps per block of up to 900 kB: run-length pass, Burrows-Wheeler transform (cyclic
 * prefix doubling with counting sorts, O(n log n) on any input), move-to-front with
 * zero-run coding, then 2-6 Huffman tables chosen per 50 symbols, as libbzip2 does.
 *
 * @module
 */

const BLOCK_MAX = 900_000 - 19; // libbzip2's nblockMAX for level 9
const GROUP_SIZE = 50;
const MAX_CODE_LEN = 17;
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

class BitWriter {
  #buf = new Uint8Array(1024);
  #len = 0;
  #acc = 0;
  #bits = 0;

  /** Writes the low `n` bits of `value`, most significant first (n <= 24). */
  write(n: number, value: number): void {
    this.#acc = (this.#acc << n) | (value & ((1 << n) - 1));
    this.#bits += n;
    while (this.#bits >= 8) {
      this.#bits -= 8;
      this.#push((this.#acc >>> this.#bits) & 0xff);
    }
    this.#acc &= (1 << this.#bits) - 1;
  }

  write32(value: number): void {
    this.write(16, (value >>> 16) & 0xffff);
    this.write(16, value & 0xffff);
  }

  finish(): Buffer {
    if (this.#bits > 0) this.write(8 - this.#bits, 0);
    return Buffer.from(this.#buf.buffer, 0, this.#len);
  }

  #push(byte: number): void {
    if (this.#len === this.#buf.length) {
      const next = new Uint8Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#len++] = byte;
  }
}

/**
 * Compresses bytes into one bzip2 stream (block size 900 kB, as `bz2.compress` level 9).
 *
 * @example
 * ```ts
 * const bz = bzip2Encode(Buffer.from('hello')); // starts with 'BZh9'
 * ```
 */
export function bzip2Encode(input: Uint8Array): Buffer {
  const out = new BitWriter();
  for (const c of 'BZh9') out.write(8, c.charCodeAt(0));
  let combined = 0;
  const block = new Uint8Array(BLOCK_MAX + 5);
  let blockLen = 0;
  let crc = 0xffffffff;
  const flushBlock = (): void => {
    if (blockLen === 0) return;
    const blockCrc = ~crc >>> 0;
    combined = (((combined << 1) | (combined >>> 31)) ^ blockCrc) >>> 0;
    writeBlock(out, block.subarray(0, blockLen), blockCrc);
    blockLen = 0;
    crc = 0xffffffff;
  };
  // Run-length pass: runs of 4-255 equal bytes become 4 bytes and a count.
  let i = 0;
  while (i < input.length) {
    const c = input[i] ?? 0;
    let run = 1;
    while (run < 255 && i + run < input.length && input[i + run] === c) run++;
    if (blockLen + 5 > BLOCK_MAX) flushBlock();
    for (let k = 0; k < run; k++) crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ c) & 0xff] ?? 0)) >>> 0;
    const literal = Math.min(run, 4);
    for (let k = 0; k < literal; k++) block[blockLen++] = c;
    if (run >= 4) block[blockLen++] = run - 4;
    i += run;
  }
  flushBlock();
  out.write(24, 0x177245);
  out.write(24, 0x385090);
  out.write32(combined);
  return out.finish();
}

function bump(counts: Int32Array | Uint32Array, k: number): void {
  counts[k] = (counts[k] ?? 0) + 1;
}

/** Decrements a counting-sort bucket and returns its new value (the slot to fill). */
function take(counts: Int32Array, k: number): number {
  const slot = (counts[k] ?? 0) - 1;
  counts[k] = slot;
  return slot;
}

/** Sorted cyclic rotations of `b` (their start positions), by prefix doubling. */
function sortRotations(b: Uint8Array): Int32Array {
  const n = b.length;
  const sa = new Int32Array(n);
  let rank = new Int32Array(n);
  let next = new Int32Array(n);
  const tmp = new Int32Array(n);
  const count = new Int32Array(Math.max(256, n) + 1);
  for (let i = 0; i < n; i++) bump(count, b[i] ?? 0);
  for (let i = 1; i < 256; i++) count[i] = (count[i] ?? 0) + (count[i - 1] ?? 0);
  for (let i = n - 1; i >= 0; i--) sa[take(count, b[i] ?? 0)] = i;
  let classes = 1;
  rank[sa[0] ?? 0] = 0;
  for (let i = 1; i < n; i++) {
    if (b[sa[i] ?? 0] !== b[sa[i - 1] ?? 0]) classes++;
    rank[sa[i] ?? 0] = classes - 1;
  }
  for (let k = 1; k < n && classes < n; k <<= 1) {
    // Positions ordered by their second half (rank of p + k), then stably by the first.
    for (let i = 0; i < n; i++) tmp[i] = ((sa[i] ?? 0) - k + n) % n;
    count.fill(0, 0, classes);
    for (let i = 0; i < n; i++) bump(count, rank[tmp[i] ?? 0] ?? 0);
    for (let i = 1; i < classes; i++) count[i] = (count[i] ?? 0) + (count[i - 1] ?? 0);
    for (let i = n - 1; i >= 0; i--) {
      const p = tmp[i] ?? 0;
      sa[take(count, rank[p] ?? 0)] = p;
    }
    next[sa[0] ?? 0] = 0;
    classes = 1;
    for (let i = 1; i < n; i++) {
      const cur = sa[i] ?? 0;
      const prev = sa[i - 1] ?? 0;
      if (rank[cur] !== rank[prev] || rank[(cur + k) % n] !== rank[(prev + k) % n]) classes++;
      next[cur] = classes - 1;
    }
    [rank, next] = [next, rank];
  }
  return sa;
}

function writeBlock(out: BitWriter, block: Uint8Array, blockCrc: number): void {
  const n = block.length;
  const sa = sortRotations(block);
  let origPtr = 0;
  const last = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = sa[i] ?? 0;
    if (p === 0) origPtr = i;
    last[i] = block[(p + n - 1) % n] ?? 0;
  }
  // Move-to-front over the bytes in use, zero runs as RUNA (0) / RUNB (1).
  const inUse = new Uint8Array(256);
  for (let i = 0; i < n; i++) inUse[last[i] ?? 0] = 1;
  const seqOf = new Uint8Array(256);
  let nInUse = 0;
  for (let c = 0; c < 256; c++) if (inUse[c]) seqOf[c] = nInUse++;
  const eob = nInUse + 1;
  const alphaSize = nInUse + 2;
  const mtf = new Uint8Array(nInUse);
  for (let i = 0; i < nInUse; i++) mtf[i] = i;
  const symbols = new Uint16Array(n + 1);
  let nSym = 0;
  let zeros = 0;
  const flushZeros = (): void => {
    if (zeros === 0) return;
    let z = zeros - 1;
    for (;;) {
      symbols[nSym++] = z & 1;
      if (z < 2) break;
      z = (z - 2) >> 1;
    }
    zeros = 0;
  };
  for (let i = 0; i < n; i++) {
    const s = seqOf[last[i] ?? 0] ?? 0;
    if (mtf[0] === s) {
      zeros++;
      continue;
    }
    flushZeros();
    let j = 1;
    while (mtf[j] !== s) j++;
    mtf.copyWithin(1, 0, j);
    mtf[0] = s;
    symbols[nSym++] = j + 1;
  }
  flushZeros();
  symbols[nSym++] = eob;
  const coded = symbols.subarray(0, nSym);
  const { tables, selectors } = chooseTables(coded, alphaSize);

  out.write(24, 0x314159);
  out.write(24, 0x265359);
  out.write32(blockCrc);
  out.write(1, 0); // not randomised
  out.write(24, origPtr);
  let used16 = 0;
  for (let g = 0; g < 16; g++) {
    for (let c = g * 16; c < g * 16 + 16; c++) if (inUse[c]) used16 |= 0x8000 >> g;
  }
  out.write(16, used16);
  for (let g = 0; g < 16; g++) {
    if (!(used16 & (0x8000 >> g))) continue;
    let bits = 0;
    for (let c = 0; c < 16; c++) if (inUse[g * 16 + c]) bits |= 0x8000 >> c;
    out.write(16, bits);
  }
  out.write(3, tables.length);
  out.write(15, selectors.length);
  const order = tables.map((_t, i) => i);
  for (const sel of selectors) {
    const j = order.indexOf(sel);
    for (let k = 0; k < j; k++) out.write(1, 1);
    out.write(1, 0);
    order.splice(j, 1);
    order.unshift(sel);
  }
  const codes = tables.map((lengths) => {
    let current = lengths[0] ?? 1;
    out.write(5, current);
    for (let s = 0; s < alphaSize; s++) {
      const len = lengths[s] ?? 1;
      while (current < len) {
        out.write(2, 2);
        current++;
      }
      while (current > len) {
        out.write(2, 3);
        current--;
      }
      out.write(1, 0);
    }
    return canonicalCodes(lengths);
  });
  for (let g = 0; g < selectors.length; g++) {
    const t = selectors[g] ?? 0;
    const lengths = tables[t] ?? new Uint8Array(0);
    const code = codes[t] ?? new Uint32Array(0);
    const end = Math.min(nSym, (g + 1) * GROUP_SIZE);
    for (let i = g * GROUP_SIZE; i < end; i++) {
      const s = coded[i] ?? 0;
      out.write(lengths[s] ?? 1, code[s] ?? 0);
    }
  }
}

/** libbzip2's table choice: start from frequency bands, then refine four times. */
function chooseTables(coded: Uint16Array, alphaSize: number): { tables: Uint8Array[]; selectors: number[] } {
  const nSym = coded.length;
  const nGroups = nSym < 200 ? 2 : nSym < 600 ? 3 : nSym < 1200 ? 4 : nSym < 2400 ? 5 : 6;
  const freq = new Uint32Array(alphaSize);
  for (const s of coded) freq[s] = (freq[s] ?? 0) + 1;
  const tables: Uint8Array[] = [];
  let remaining = nSym;
  let lo = 0;
  for (let t = nGroups; t > 0; t--) {
    const target = remaining / t;
    let hi = lo - 1;
    let acc = 0;
    while (acc < target && hi < alphaSize - 1) acc += freq[++hi] ?? 0;
    if (hi > lo && t !== nGroups && t !== 1 && (nGroups - t) % 2 === 1) acc -= freq[hi--] ?? 0;
    const lengths = new Uint8Array(alphaSize).fill(15);
    for (let s = lo; s <= hi; s++) lengths[s] = 0;
    tables.push(lengths);
    lo = hi + 1;
    remaining -= acc;
  }
  let selectors: number[] = [];
  for (let iter = 0; iter < 4; iter++) {
    selectors = [];
    const counts = tables.map(() => new Uint32Array(alphaSize));
    for (let start = 0; start < nSym; start += GROUP_SIZE) {
      const end = Math.min(nSym, start + GROUP_SIZE);
      let best = 0;
      let bestCost = Infinity;
      for (let t = 0; t < tables.length; t++) {
        const lengths = tables[t] ?? new Uint8Array(0);
        let cost = 0;
        for (let i = start; i < end; i++) cost += lengths[coded[i] ?? 0] ?? 0;
        if (cost < bestCost) [best, bestCost] = [t, cost];
      }
      selectors.push(best);
      const c = counts[best] ?? new Uint32Array(0);
      for (let i = start; i < end; i++) bump(c, coded[i] ?? 0);
    }
    for (let t = 0; t < tables.length; t++) tables[t] = codeLengths(counts[t] ?? new Uint32Array(0));
  }
  return { tables, selectors };
}

/** Huffman code lengths of at most 17 bits; every symbol gets a code (bzip2 needs that). */
function codeLengths(freq: Uint32Array): Uint8Array {
  const n = freq.length;
  const weight = Array.from(freq, (f) => Math.max(1, f));
  for (;;) {
    const lengths = huffmanLengths(weight);
    if (lengths.every((l) => l <= MAX_CODE_LEN)) return Uint8Array.from(lengths);
    for (let i = 0; i < n; i++) weight[i] = 1 + Math.floor((weight[i] ?? 1) / 2);
  }
}

function huffmanLengths(weight: readonly number[]): number[] {
  const n = weight.length;
  // Nodes: leaves 0..n-1, internal n..; parent links give each leaf's depth.
  const parent = new Int32Array(2 * n).fill(-1);
  const w = [...weight];
  const live: number[] = weight.map((_x, i) => i);
  while (live.length > 1) {
    live.sort((a, b) => (w[a] ?? 0) - (w[b] ?? 0) || a - b);
    const a = live.shift() ?? 0;
    const b = live.shift() ?? 0;
    const node = w.length;
    w.push((w[a] ?? 0) + (w[b] ?? 0));
    parent[a] = node;
    parent[b] = node;
    live.push(node);
  }
  return weight.map((_x, i) => {
    let depth = 0;
    for (let p = parent[i] ?? -1; p !== -1; p = parent[p] ?? -1) depth++;
    return Math.max(1, depth);
  });
}

/** Canonical codes as bzip2 assigns them: by length, then by symbol. */
function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  for (let len = 1; len <= 20; len++) {
    for (let s = 0; s < lengths.length; s++) if (lengths[s] === len) codes[s] = code++;
    code <<= 1;
  }
  return codes;
}
