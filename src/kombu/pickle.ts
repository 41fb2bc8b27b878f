/**
 * A safe, bounded reader of Python pickles (protocols 0-5), for the `pickle` serializer
 * (`application/x-python-serialize`) that Celery 3.1 uses by default. Decoding is opt-in:
 * {@link loads} reads pickle only when the accept list names it.
 *
 * Nothing in the stream is ever called, imported or constructed: a pickle names Python
 * callables (GLOBAL, REDUCE, NEWOBJ, BUILD), and this reader only records them. A short
 * list of well-known value types is turned into plain data afterwards (see
 * {@link pickleLoads}); every other object becomes an inert {@link PickledObject}.
 *
 * Why not the `pickleparser` package: measured against these rules it calls whatever the
 * name resolver returns on REDUCE/NEWOBJ, assigns dict keys with `obj[key] = value` (a
 * `__proto__` key replaces the dict's prototype), reads LONG1 of more than 8 bytes as an
 * error and 8-byte ones unsigned, spreads APPENDS into `push(...items)` (a 200,000-item
 * APPENDS overflows the call stack) and has no limit on depth or memo.
 *
 * @module
 */
import { DecodeError } from '../errors.js';
import type { DecodeContext } from './decode-limits.js';
import { limitError } from './decode-limits.js';
import './pickle-types.js';
import { finalizePickle, GlobalRef, PickleInstance, PyDict, PySet } from './pickle-values.js';

export { PickledObject } from './pickle-values.js';

/**
 * Python 3.11 refuses to turn an int of more than 4300 decimal digits into text
 * (`sys.int_max_str_digits`); ints past that size are refused here too, in text and binary
 * opcodes alike (4300 digits fit in 1786 bytes).
 */
const MAX_INT_DIGITS = 4300;
const MAX_INT_BYTES = 1786;

/** Module renames Python 3 applies to pickles written by Python 2 (`_compat_pickle`). */
const MODULE_RENAMES: ReadonlyMap<string, string> = new Map([
  ['__builtin__', 'builtins'],
  ['exceptions', 'builtins'],
  ['copy_reg', 'copyreg'],
  ['Queue', 'queue'],
  ['UserDict', 'collections'],
  ['UserList', 'collections'],
]);

const MARK_LIMIT_SLACK = 16;

/**
 * Decodes one pickle into plain data. See the module notes for what each Python type
 * becomes; in short: dict → object (string keys), list/tuple/set/frozenset → array,
 * str → string, bytes/bytearray → Buffer, int → number (bigint beyond ±2^53-1),
 * float → number, bool, None → null, datetime/date/time → ISO 8601 text as kombu's JSON
 * encoder writes it, timedelta → seconds, Decimal/UUID → text, an exception instance →
 * Celery's `{exc_type, exc_message, exc_module}`, any other object → {@link PickledObject}.
 *
 * @throws {@link DecodeError} for malformed, truncated or unsupported streams (persistent
 * ids, extension codes, out-of-band buffers); a {@link DecodeLimitError} when a limit of
 * `ctx` is crossed (depth or cycles `TOO_DEEP`, shared references `TOO_MANY_ALIASES`, memo
 * `MEMO_TOO_LARGE`, collections `BODY_TOO_LARGE`).
 * @example
 * ```ts
 * pickleLoads(body, { limits: DEFAULT_DECODE_LIMITS, label: `task ${id}` });
 * ```
 */
export function pickleLoads(body: Uint8Array, ctx: DecodeContext): unknown {
  return finalizePickle(new Unpickler(body, ctx).load(), ctx);
}

class Unpickler {
  readonly #data: Uint8Array;
  readonly #view: DataView;
  readonly #ctx: DecodeContext;
  #pos = 0;
  #stack: unknown[] = [];
  readonly #metastack: unknown[][] = [];
  /**
   * The memo: indices 0..n-1 in an array (pickles number them in order: 8 bytes an entry),
   * any others in a Map (a Map entry costs about 50 bytes: 1,000,000 MEMOIZE opcodes, a
   * 1 MB body, were 57 MB of memo).
   */
  readonly #memo: unknown[] = [];
  readonly #sparseMemo = new Map<number, unknown>();
  #collections = 0;

  constructor(data: Uint8Array, ctx: DecodeContext) {
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.#ctx = ctx;
  }

  load(): unknown {
    const data = this.#data;
    while (this.#pos < data.length) {
      const op = data[this.#pos++] ?? 0;
      if (op === 0x2e /* STOP */) return this.#pop();
      this.#dispatch(op);
    }
    throw new DecodeError('pickle data was truncated (no STOP opcode)');
  }

  #dispatch(op: number): void {
    const stack = this.#stack;
    switch (op) {
      case 0x80 /* PROTO */: {
        const version = this.#byte();
        if (version > 5) throw new DecodeError(`unsupported pickle protocol: ${version}`);
        return;
      }
      case 0x95 /* FRAME */:
        this.#take(8);
        return;
      case 0x28 /* MARK */:
        if (this.#metastack.length >= this.#ctx.limits.maxDepth * 2 + MARK_LIMIT_SLACK) {
          throw limitError(this.#ctx, 'TOO_DEEP', 'maxDepth', 'pickle opens too many nested marks');
        }
        this.#metastack.push(stack);
        this.#stack = [];
        return;
      case 0x30 /* POP */:
        if (stack.length > 0) stack.pop();
        else this.#popMark();
        return;
      case 0x31 /* POP_MARK */:
        this.#popMark();
        return;
      case 0x32 /* DUP */:
        stack.push(this.#top());
        return;
      // Memo.
      case 0x70 /* PUT */:
        this.#put(this.#intLine());
        return;
      case 0x71 /* BINPUT */:
        this.#put(this.#byte());
        return;
      case 0x72 /* LONG_BINPUT */:
        this.#put(this.#uint32());
        return;
      case 0x94 /* MEMOIZE */:
        this.#put(this.#memo.length + this.#sparseMemo.size);
        return;
      case 0x67 /* GET */:
        stack.push(this.#get(this.#intLine()));
        return;
      case 0x68 /* BINGET */:
        stack.push(this.#get(this.#byte()));
        return;
      case 0x6a /* LONG_BINGET */:
        stack.push(this.#get(this.#uint32()));
        return;
      // Constants and numbers.
      case 0x4e /* NONE */:
        stack.push(null);
        return;
      case 0x88 /* NEWTRUE */:
        stack.push(true);
        return;
      case 0x89 /* NEWFALSE */:
        stack.push(false);
        return;
      case 0x49 /* INT */: {
        const text = this.#line();
        stack.push(text === '00' ? false : text === '01' ? true : parseIntText(text));
        return;
      }
      case 0x4c /* LONG */: {
        const text = this.#line();
        stack.push(parseIntText(text.endsWith('L') ? text.slice(0, -1) : text));
        return;
      }
      case 0x4a /* BININT */:
        stack.push(this.#view.getInt32(this.#take(4), true));
        return;
      case 0x4b /* BININT1 */:
        stack.push(this.#byte());
        return;
      case 0x4d /* BININT2 */:
        stack.push(this.#view.getUint16(this.#take(2), true));
        return;
      case 0x8a /* LONG1 */:
        stack.push(this.#long(this.#byte()));
        return;
      case 0x8b /* LONG4 */: {
        const n = this.#view.getInt32(this.#take(4), true);
        if (n < 0) throw new DecodeError('LONG4 pickle opcode with a negative byte count');
        stack.push(this.#long(n));
        return;
      }
      case 0x46 /* FLOAT */:
        stack.push(parseFloatText(this.#line()));
        return;
      case 0x47 /* BINFLOAT */:
        stack.push(this.#view.getFloat64(this.#take(8), false));
        return;
      // Strings and bytes.
      case 0x53 /* STRING */:
        stack.push(parseStringLiteral(this.#line()));
        return;
      case 0x54 /* BINSTRING */: {
        const n = this.#view.getInt32(this.#take(4), true);
        if (n < 0) throw new DecodeError('BINSTRING pickle opcode with a negative length');
        stack.push(this.#text(n, 'latin1'));
        return;
      }
      case 0x55 /* SHORT_BINSTRING */:
        stack.push(this.#text(this.#byte(), 'latin1'));
        return;
      case 0x56 /* UNICODE */:
        stack.push(rawUnicodeEscape(this.#lineBytes()));
        return;
      case 0x58 /* BINUNICODE */:
        stack.push(this.#text(this.#uint32(), 'utf8'));
        return;
      case 0x8c /* SHORT_BINUNICODE */:
        stack.push(this.#text(this.#byte(), 'utf8'));
        return;
      case 0x8d /* BINUNICODE8 */:
        stack.push(this.#text(this.#uint64(), 'utf8'));
        return;
      case 0x42 /* BINBYTES */:
        stack.push(this.#bytes(this.#uint32()));
        return;
      case 0x43 /* SHORT_BINBYTES */:
        stack.push(this.#bytes(this.#byte()));
        return;
      case 0x8e /* BINBYTES8 */:
      case 0x96 /* BYTEARRAY8 */:
        stack.push(this.#bytes(this.#uint64()));
        return;
      case 0x97 /* NEXT_BUFFER */:
        throw new DecodeError('pickle refers to out-of-band buffers, which a message cannot carry');
      case 0x98 /* READONLY_BUFFER */:
        return;
      // Tuples and lists.
      case 0x29 /* EMPTY_TUPLE */:
        stack.push(this.#collection([]));
        return;
      case 0x85 /* TUPLE1 */:
      case 0x86 /* TUPLE2 */:
      case 0x87 /* TUPLE3 */: {
        const n = op - 0x84;
        if (stack.length < n) throw underflow();
        stack.push(this.#collection(stack.splice(stack.length - n, n)));
        return;
      }
      case 0x74 /* TUPLE */:
      case 0x6c /* LIST */: {
        const items = this.#popMark();
        this.#stack.push(this.#collection(items));
        return;
      }
      case 0x5d /* EMPTY_LIST */:
        stack.push(this.#collection([]));
        return;
      case 0x61 /* APPEND */: {
        const item = this.#pop();
        appendTo(this.#top(), [item]);
        return;
      }
      case 0x65 /* APPENDS */: {
        const items = this.#popMark();
        appendTo(this.#top(), items);
        return;
      }
      // Dicts.
      case 0x7d /* EMPTY_DICT */:
        stack.push(this.#collection(new PyDict()));
        return;
      case 0x64 /* DICT */: {
        const items = this.#popMark();
        const dict = this.#collection(new PyDict());
        setItems(dict, items);
        this.#stack.push(dict);
        return;
      }
      case 0x73 /* SETITEM */: {
        const value = this.#pop();
        const key = this.#pop();
        setItems(this.#top(), [key, value]);
        return;
      }
      case 0x75 /* SETITEMS */: {
        const items = this.#popMark();
        setItems(this.#top(), items);
        return;
      }
      // Sets.
      case 0x8f /* EMPTY_SET */:
        stack.push(this.#collection(new PySet([])));
        return;
      case 0x90 /* ADDITEMS */: {
        const items = this.#popMark();
        const set = this.#top();
        if (!(set instanceof PySet)) throw new DecodeError('ADDITEMS pickle opcode on a non-set');
        for (const item of items) set.items.push(item);
        return;
      }
      case 0x91 /* FROZENSET */: {
        const items = this.#popMark();
        this.#stack.push(this.#collection(new PySet(items)));
        return;
      }
      // Globals and objects: recorded, never resolved nor called.
      case 0x63 /* GLOBAL */: {
        const module = this.#line();
        stack.push(globalRef(module, this.#line()));
        return;
      }
      case 0x93 /* STACK_GLOBAL */: {
        const name = this.#pop();
        const module = this.#pop();
        if (typeof module !== 'string' || typeof name !== 'string') {
          throw new DecodeError('STACK_GLOBAL pickle opcode needs two strings');
        }
        stack.push(globalRef(module, name));
        return;
      }
      case 0x69 /* INST */: {
        const module = this.#line();
        const ref = globalRef(module, this.#line());
        const args = this.#popMark();
        this.#stack.push(this.#collection(new PickleInstance(ref, args)));
        return;
      }
      case 0x6f /* OBJ */: {
        const [cls, ...args] = this.#popMark();
        this.#stack.push(this.#collection(new PickleInstance(needGlobal(cls, 'OBJ'), args)));
        return;
      }
      case 0x81 /* NEWOBJ */: {
        const args = this.#pop();
        const cls = needGlobal(this.#pop(), 'NEWOBJ');
        stack.push(this.#collection(new PickleInstance(cls, needArgs(args, 'NEWOBJ'))));
        return;
      }
      case 0x92 /* NEWOBJ_EX */: {
        const kwargs = this.#pop();
        const args = this.#pop();
        const cls = needGlobal(this.#pop(), 'NEWOBJ_EX');
        const instance = new PickleInstance(cls, needArgs(args, 'NEWOBJ_EX'));
        if (kwargs instanceof PyDict && kwargs.keys.length > 0) instance.kwargs = kwargs;
        stack.push(this.#collection(instance));
        return;
      }
      case 0x52 /* REDUCE */: {
        const args = needArgs(this.#pop(), 'REDUCE');
        const callable = needGlobal(this.#pop(), 'REDUCE');
        stack.push(this.#reduce(callable, args));
        return;
      }
      case 0x62 /* BUILD */: {
        const state = this.#pop();
        const target = this.#top();
        if (!(target instanceof PickleInstance)) throw new DecodeError('BUILD pickle opcode on a non-object');
        target.state = state;
        return;
      }
      case 0x50 /* PERSID */:
      case 0x51 /* BINPERSID */:
        throw new DecodeError('pickle uses persistent ids, which are not supported');
      case 0x82 /* EXT1 */:
      case 0x83 /* EXT2 */:
      case 0x84 /* EXT4 */:
        throw new DecodeError('pickle uses extension codes, which are not supported');
      default:
        throw new DecodeError(`invalid pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }

  /**
   * REDUCE: a call recorded as an instance, except for the few pure helpers pickle itself
   * uses to spell plain data (bytes in protocols 0-2, sets before protocol 4, nested class
   * names, old-style object creation).
   */
  #reduce(callable: GlobalRef, args: unknown[]): unknown {
    switch (callable.qualified) {
      case '_codecs.encode': {
        const [text, encoding] = args;
        if (typeof text === 'string' && (encoding === 'latin1' || encoding === 'latin-1')) {
          return Buffer.from(text, 'latin1');
        }
        break;
      }
      case 'builtins.bytes':
      case 'builtins.bytearray': {
        const [source, encoding] = args;
        if (source === undefined) return Buffer.alloc(0);
        if (source instanceof Uint8Array) return Buffer.from(source);
        if (typeof source === 'string' && (encoding === 'latin1' || encoding === 'latin-1')) {
          return Buffer.from(source, 'latin1');
        }
        break;
      }
      case 'builtins.set':
      case 'builtins.frozenset': {
        const [items] = args;
        if (items === undefined) return this.#collection(new PySet([]));
        if (Array.isArray(items)) return this.#collection(new PySet([...items]));
        break;
      }
      case 'builtins.getattr': {
        const [owner, attr] = args;
        if (owner instanceof GlobalRef && typeof attr === 'string') {
          return new GlobalRef(owner.module, `${owner.name}.${attr}`);
        }
        break;
      }
      case 'copyreg._reconstructor': {
        // _reconstructor(cls, base, state): base.__new__(cls[, state]); BUILD follows.
        const [cls, base, state] = args;
        if (cls instanceof GlobalRef) {
          const plain = base instanceof GlobalRef && base.qualified === 'builtins.object';
          return this.#collection(new PickleInstance(cls, plain || state === null ? [] : [state]));
        }
        break;
      }
      case 'copyreg.__newobj__': {
        const [cls, ...rest] = args;
        if (cls instanceof GlobalRef) return this.#collection(new PickleInstance(cls, rest));
        break;
      }
      default:
        break;
    }
    return this.#collection(new PickleInstance(callable, args));
  }

  /** Counts a new collection against the limit: one-byte opcodes must not allocate without end. */
  #collection<T>(value: T): T {
    if (++this.#collections > this.#ctx.limits.maxCollections) {
      throw limitError(this.#ctx, 'BODY_TOO_LARGE', 'maxCollections', 'pickle builds too many collections');
    }
    return value;
  }

  #put(index: number): void {
    const memo = this.#memo;
    const sparse = this.#sparseMemo;
    const value = this.#top();
    if (index < memo.length) {
      memo[index] = value;
      return;
    }
    if (!sparse.has(index) && memo.length + sparse.size >= this.#ctx.limits.maxPickleMemo) {
      throw limitError(this.#ctx, 'MEMO_TOO_LARGE', 'maxPickleMemo', 'pickle memo grows too large');
    }
    if (index === memo.length) {
      memo.push(value);
      if (sparse.size > 0) sparse.delete(index);
    } else {
      sparse.set(index, value);
    }
  }

  #get(index: number): unknown {
    if (index < this.#memo.length) return this.#memo[index];
    if (!this.#sparseMemo.has(index)) throw new DecodeError(`pickle memo has no entry ${index}`);
    return this.#sparseMemo.get(index);
  }

  #pop(): unknown {
    if (this.#stack.length === 0) throw underflow();
    return this.#stack.pop();
  }

  #top(): unknown {
    if (this.#stack.length === 0) throw underflow();
    return this.#stack[this.#stack.length - 1];
  }

  /** Ends the innermost mark: returns what was pushed since, and goes back to the stack before. */
  #popMark(): unknown[] {
    const items = this.#stack;
    const previous = this.#metastack.pop();
    if (previous === undefined) throw new DecodeError('pickle pops a mark that was never set');
    this.#stack = previous;
    return items;
  }

  /** Returns the position of `n` bytes and moves past them. */
  #take(n: number): number {
    const at = this.#pos;
    if (n > this.#data.length - at) throw new DecodeError('pickle data was truncated');
    this.#pos = at + n;
    return at;
  }

  #byte(): number {
    return this.#data[this.#take(1)] ?? 0;
  }

  #uint32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }

  #uint64(): number {
    const at = this.#take(8);
    const high = this.#view.getUint32(at + 4, true);
    // Any length past the body is truncation; a high word is never needed for a real body.
    if (high !== 0) throw new DecodeError('pickle data was truncated');
    return this.#view.getUint32(at, true);
  }

  #bytes(n: number): Buffer {
    const at = this.#take(n);
    // A copy: the value must not keep the whole message body alive.
    return Buffer.from(this.#data.subarray(at, at + n));
  }

  #text(n: number, encoding: 'utf8' | 'latin1'): string {
    const at = this.#take(n);
    return Buffer.from(this.#data.buffer, this.#data.byteOffset + at, n).toString(encoding);
  }

  #lineBytes(): Uint8Array {
    const data = this.#data;
    const end = data.indexOf(0x0a, this.#pos);
    if (end < 0) throw new DecodeError('pickle data was truncated (line without newline)');
    const line = data.subarray(this.#pos, end);
    this.#pos = end + 1;
    return line;
  }

  #line(): string {
    const line = this.#lineBytes();
    return Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('latin1');
  }

  #intLine(): number {
    const text = this.#line();
    if (!/^\d{1,10}$/.test(text)) throw new DecodeError(`invalid pickle memo index ${JSON.stringify(text)}`);
    return Number(text);
  }

  /** LONG1/LONG4: little-endian two's complement. */
  #long(n: number): number | bigint {
    if (n > MAX_INT_BYTES)
      throw new DecodeError(`pickled int of ${n} bytes exceeds ${MAX_INT_DIGITS} digits`);
    const at = this.#take(n);
    if (n === 0) return 0;
    let hex = '';
    for (let i = at + n - 1; i >= at; i--) hex += (this.#data[i] ?? 0).toString(16).padStart(2, '0');
    let value = BigInt(`0x${hex}`);
    if ((this.#data[at + n - 1] ?? 0) & 0x80) value -= 1n << BigInt(8 * n);
    return narrow(value);
  }
}

/** A bigint as a number when it fits exactly. */
function narrow(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

function parseIntText(text: string): number | bigint {
  const match = /^\s*([+-]?)(\d+)\s*$/.exec(text);
  if (match === null) throw new DecodeError(`invalid pickled int ${JSON.stringify(text.slice(0, 40))}`);
  const digits = match[2] ?? '';
  if (digits.length > MAX_INT_DIGITS) {
    throw new DecodeError(`pickled int of ${digits.length} digits exceeds ${MAX_INT_DIGITS} digits`);
  }
  const value = BigInt(digits);
  return narrow(match[1] === '-' ? -value : value);
}

function parseFloatText(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === 'nan' || t === '+nan' || t === '-nan') return NaN;
  if (t === 'inf' || t === '+inf' || t === 'infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  // Linear (no nested quantifiers over the same digits): the line can be as long as the body.
  if (t.length > 64 || !/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/.test(t)) {
    throw new DecodeError(`invalid pickled float ${JSON.stringify(text.slice(0, 40))}`);
  }
  return Number(t);
}

const SIMPLE_ESCAPES: ReadonlyMap<string, number> = new Map([
  ['\\', 0x5c],
  ["'", 0x27],
  ['"', 0x22],
  ['a', 0x07],
  ['b', 0x08],
  ['f', 0x0c],
  ['n', 0x0a],
  ['r', 0x0d],
  ['t', 0x09],
  ['v', 0x0b],
]);

const OCTAL = /[0-7]{1,3}/y;

/** STRING: a Python 2 `repr()` of a byte string, quoted, with backslash escapes. */
function parseStringLiteral(text: string): string {
  const quote = text[0];
  if (text.length < 2 || (quote !== "'" && quote !== '"') || text[text.length - 1] !== quote) {
    throw new DecodeError('STRING pickle opcode argument must be quoted');
  }
  const body = text.slice(1, -1);
  const out: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i] ?? '';
    if (c !== '\\') {
      out.push(c.charCodeAt(0) & 0xff);
      continue;
    }
    const e = body[++i] ?? '';
    const simple = SIMPLE_ESCAPES.get(e);
    if (simple !== undefined) out.push(simple);
    else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/^[0-7]$/.test(e)) {
      OCTAL.lastIndex = i;
      const oct = OCTAL.exec(body)?.[0] ?? e;
      out.push(parseInt(oct, 8) & 0xff);
      i += oct.length - 1;
    } else if (e !== '\n') {
      out.push(0x5c, e.charCodeAt(0) & 0xff);
    }
  }
  return Buffer.from(out).toString('latin1');
}

/** UNICODE: Python's raw-unicode-escape: latin-1 bytes with `\uXXXX` / `\UXXXXXXXX`. */
function rawUnicodeEscape(bytes: Uint8Array): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (whole, u4?: string, u8?: string) => {
    const code = parseInt(u4 ?? u8 ?? '', 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

function globalRef(module: string, name: string): GlobalRef {
  return new GlobalRef(MODULE_RENAMES.get(module) ?? module, name);
}

function needGlobal(value: unknown, op: string): GlobalRef {
  if (value instanceof GlobalRef) return value;
  throw new DecodeError(`${op} pickle opcode on something that is not a class or function name`);
}

function needArgs(value: unknown, op: string): unknown[] {
  if (Array.isArray(value)) return value;
  throw new DecodeError(`${op} pickle opcode needs a tuple of arguments`);
}

function appendTo(target: unknown, items: readonly unknown[]): void {
  if (Array.isArray(target)) {
    for (const item of items) target.push(item);
  } else if (target instanceof PickleInstance) {
    target.items ??= [];
    for (const item of items) target.items.push(item);
  } else {
    throw new DecodeError('APPEND pickle opcode on a non-list');
  }
}

function setItems(target: unknown, items: readonly unknown[]): void {
  if (items.length % 2 !== 0) throw new DecodeError('SETITEMS pickle opcode with an odd number of items');
  let dict: PyDict;
  if (target instanceof PyDict) dict = target;
  else if (target instanceof PickleInstance) dict = target.dictItems ??= new PyDict();
  else throw new DecodeError('SETITEM pickle opcode on a non-dict');
  for (let i = 0; i < items.length; i += 2) {
    dict.keys.push(items[i]);
    dict.values.push(items[i + 1]);
  }
}

function underflow(): DecodeError {
  return new DecodeError('pickle stack underflow');
}
