/**
 * A small pickle writer (protocol 2, kombu's default `PICKLE_PROTOCOL`) for what task
 * message bodies carry: the `pickle` serializer's encoder, so a Celery 3.1 worker (whose
 * task serializer defaults to pickle) can be sent task protocol v1 bodies in its own format.
 *
 * It writes plain data only, and only opcodes that build containers and scalars; the one
 * global it names is `_codecs.encode`, which Python's own pickle uses for `bytes` at
 * protocol 2 (protocol 3's BINBYTES is unknown to Python 2). What each value becomes:
 *
 * | JavaScript | Python |
 * |---|---|
 * | null, undefined (in an array) | None |
 * | boolean | bool |
 * | safe integer (not -0) | int |
 * | bigint | int (any size) |
 * | other number (fraction, -0, NaN, ±Infinity, beyond 2^53) | float |
 * | string | str (lone surrogates kept, as Python's `surrogatepass`) |
 * | Buffer / Uint8Array | bytes |
 * | array | list |
 * | any other object | dict of its own enumerable string keys (after `toJSON()`, as JSON) |
 *
 * As with JSON, object properties holding undefined, functions or symbols are left out and
 * such array items become None; a cycle, a function or symbol at the top, or nesting deeper
 * than {@link MAX_PICKLE_DEPTH} is an {@link EncodeError}.
 *
 * @module
 */
import { EncodeError } from '../errors.js';

/** Deepest nesting written (Python's own `pickle.dumps` stops near its recursion limit, 1000). */
export const MAX_PICKLE_DEPTH = 1000;

/** Items per APPENDS / SETITEMS, as Python batches them (`_BATCHSIZE`). */
const BATCH = 1000;

const PROTO = 0x80;
const STOP = 0x2e; // .
const NONE = 0x4e; // N
const NEWTRUE = 0x88;
const NEWFALSE = 0x89;
const BININT1 = 0x4b; // K
const BININT2 = 0x4d; // M
const BININT = 0x4a; // J
const LONG1 = 0x8a;
const LONG4 = 0x8b;
const BINFLOAT = 0x47; // G
const BINUNICODE = 0x58; // X
const EMPTY_LIST = 0x5d; // ]
const EMPTY_DICT = 0x7d; // }
const MARK = 0x28; // (
const APPEND = 0x61; // a
const APPENDS = 0x65; // e
const SETITEM = 0x73; // s
const SETITEMS = 0x75; // u
const TUPLE2 = 0x86;
const REDUCE = 0x52; // R
const CODECS_ENCODE = Buffer.from('c_codecs\nencode\n', 'latin1');
const SURROGATE = /[\ud800-\udfff]/;

/** Grows a byte buffer as values are written. */
class Writer {
  #buf = Buffer.allocUnsafe(256);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  byte(b: number): void {
    this.#room(1);
    this.#buf[this.#len++] = b;
  }

  bytes(data: Uint8Array): void {
    this.#room(data.length);
    this.#buf.set(data, this.#len);
    this.#len += data.length;
  }

  uint16(n: number): void {
    this.#room(2);
    this.#len = this.#buf.writeUInt16LE(n, this.#len);
  }

  int32(n: number): void {
    this.#room(4);
    this.#len = this.#buf.writeInt32LE(n, this.#len);
  }

  uint32(n: number): void {
    this.#room(4);
    this.#len = this.#buf.writeUInt32LE(n, this.#len);
  }

  double(n: number): void {
    this.#room(8);
    this.#len = this.#buf.writeDoubleBE(n, this.#len);
  }

  result(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}

/**
 * Python's `encode_long`: the shortest little-endian two's complement bytes of `n` (none for 0).
 *
 * @example
 * ```ts
 * encodeLong(255n); // <ff 00>
 * encodeLong(-1n); // <ff>
 * ```
 */
export function encodeLong(n: bigint): Buffer {
  if (n === 0n) return Buffer.alloc(0);
  const out: number[] = [];
  let v = n;
  // Emit bytes until the rest is all sign (0 or -1) and the last byte's top bit agrees.
  for (;;) {
    const byte = Number(v & 0xffn);
    out.push(byte);
    v >>= 8n;
    if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
  }
  return Buffer.from(out);
}

/**
 * A string as UTF-8 the way Python's pickle writes `str` (`surrogatepass`): a lone surrogate
 * becomes its own three bytes instead of U+FFFD, so Python reads the same string back.
 */
function utf8(text: string): Buffer {
  if (!SURROGATE.test(text)) return Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = text.charCodeAt(i + 1);
    if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++; // a proper pair: Buffer encodes it
      continue;
    }
    parts.push(Buffer.from(text.slice(start, i), 'utf8'));
    parts.push(Buffer.from([0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]));
    start = i + 1;
  }
  parts.push(Buffer.from(text.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

function isSkipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

function hasToJSON(value: object): value is { toJSON: () => unknown } {
  return 'toJSON' in value && typeof value.toJSON === 'function';
}

/** Writes the values of one pickle, tracking the containers open on the current path. */
class Pickler {
  readonly #w = new Writer();
  readonly #path = new Set<object>();

  dump(value: unknown): Buffer {
    if (isSkipped(value)) throw new EncodeError(`cannot encode ${typeof value} as pickle`);
    this.#w.byte(PROTO);
    this.#w.byte(2);
    this.#save(value, 0);
    this.#w.byte(STOP);
    return this.#w.result();
  }

  #save(value: unknown, depth: number): void {
    const w = this.#w;
    switch (typeof value) {
      case 'boolean':
        w.byte(value ? NEWTRUE : NEWFALSE);
        return;
      case 'number':
        this.#number(value);
        return;
      case 'bigint':
        this.#long(value);
        return;
      case 'string':
        this.#text(value);
        return;
      case 'object':
        break;
      default:
        // undefined, a function or a symbol inside an array: None, as JSON writes null.
        w.byte(NONE);
        return;
    }
    if (value === null) {
      w.byte(NONE);
      return;
    }
    if (value instanceof Uint8Array) {
      this.#bytes(value);
      return;
    }
    if (depth >= MAX_PICKLE_DEPTH) {
      throw new EncodeError(`cannot encode as pickle: nested more than ${MAX_PICKLE_DEPTH} levels deep`);
    }
    if (!Array.isArray(value) && hasToJSON(value)) {
      this.#save(value.toJSON(), depth + 1);
      return;
    }
    if (this.#path.has(value)) throw new EncodeError('cannot encode a cyclic structure as pickle');
    this.#path.add(value);
    if (Array.isArray(value)) this.#list(value, depth);
    else this.#dict(value, depth);
    this.#path.delete(value);
  }

  #number(n: number): void {
    const w = this.#w;
    if (!Number.isSafeInteger(n) || Object.is(n, -0)) {
      w.byte(BINFLOAT);
      w.double(n);
    } else if (n >= 0 && n < 0x100) {
      w.byte(BININT1);
      w.byte(n);
    } else if (n >= 0 && n < 0x10000) {
      w.byte(BININT2);
      w.uint16(n);
    } else if (n >= -0x80000000 && n <= 0x7fffffff) {
      w.byte(BININT);
      w.int32(n);
    } else {
      this.#long(BigInt(n));
    }
  }

  #long(n: bigint): void {
    const w = this.#w;
    if (n >= -0x80000000n && n <= 0x7fffffffn) {
      this.#number(Number(n));
      return;
    }
    const bytes = encodeLong(n);
    if (bytes.length < 0x100) {
      w.byte(LONG1);
      w.byte(bytes.length);
    } else {
      w.byte(LONG4);
      w.int32(bytes.length);
    }
    w.bytes(bytes);
  }

  #text(text: string): void {
    const data = utf8(text);
    this.#w.byte(BINUNICODE);
    this.#w.uint32(data.length);
    this.#w.bytes(data);
  }

  /** Python 3's protocol-2 form of bytes: `_codecs.encode(<latin-1 text>, 'latin1')`. */
  #bytes(data: Uint8Array): void {
    const w = this.#w;
    w.bytes(CODECS_ENCODE);
    this.#text(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1'));
    this.#text('latin1');
    w.byte(TUPLE2);
    w.byte(REDUCE);
  }

  #list(items: readonly unknown[], depth: number): void {
    const w = this.#w;
    w.byte(EMPTY_LIST);
    for (let start = 0; start < items.length; start += BATCH) {
      const end = Math.min(items.length, start + BATCH);
      if (end - start === 1) {
        this.#save(items[start], depth + 1);
        w.byte(APPEND);
        continue;
      }
      w.byte(MARK);
      for (let i = start; i < end; i++) this.#save(items[i], depth + 1);
      w.byte(APPENDS);
    }
  }

  #dict(obj: object, depth: number): void {
    const w = this.#w;
    w.byte(EMPTY_DICT);
    const entries = Object.entries(obj).filter(([, v]) => !isSkipped(v));
    for (let start = 0; start < entries.length; start += BATCH) {
      const end = Math.min(entries.length, start + BATCH);
      if (end - start > 1) w.byte(MARK);
      for (let i = start; i < end; i++) {
        const entry = entries[i];
        if (entry === undefined) continue;
        this.#text(entry[0]);
        this.#save(entry[1], depth + 1);
      }
      w.byte(end - start > 1 ? SETITEMS : SETITEM);
    }
  }
}

/**
 * Encodes plain data as a protocol 2 pickle (see the module notes for the type mapping),
 * readable by Python 2 and 3's `pickle.loads` and by this library's reader.
 *
 * @throws {@link EncodeError} for a cycle, nesting deeper than {@link MAX_PICKLE_DEPTH}, or
 *   a top-level undefined, function or symbol.
 * @example
 * ```ts
 * pickleDumps({ task: 'tasks.add', args: [2, 3], big: 2n ** 70n });
 * ```
 */
export function pickleDumps(value: unknown): Buffer {
  return new Pickler().dump(value);
}
