/**
 * Writing foreign values out without letting them blow up. A decoded body may be small in
 * memory and vast once written: a YAML alias bomb (or pickle memo references) shares one
 * list a thousand million times, and a body nested 200,000 deep overflows any recursive
 * writer (`JSON.stringify`, a repr). Two tools, neither recursive:
 *
 * - {@link measureValue}: how deep a value is and how long its JSON text would be, counting a
 *   shared reference every time it would be written but walking it only once, so a bomb is
 *   refused (typed {@link EncodeLimitError}) in time linear in its distinct parts, before
 *   anything is written. A cycle counts as infinitely deep.
 * - {@link writeValue}: writes a value in a {@link ValueFormat} (JSON in {@link JSON_FORMAT},
 *   Python's repr elsewhere) with an explicit stack, stopping at a length: cut there with
 *   `...` (a repr in a log line) or refused (JSON output).
 *
 * @module
 */
import { EncodeError, EncodeLimitError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import type { DecodeLimits } from './decode-limits.js';
import { DEFAULT_DECODE_LIMITS } from './decode-limits.js';

/** What {@link measureValue} finds. */
export interface ValueSize {
  /** Nesting of lists/maps on the deepest path (a top-level list is 1, a scalar 0). */
  readonly depth: number;
  /** Length of the value's JSON text, estimated (strings without their escapes). */
  readonly bytes: number;
}

/** The limits a written value is held to: those a reader applies to what it decodes. */
export type WriteLimits = Readonly<Pick<DecodeLimits, 'maxDepth' | 'maxDecodedBytes'>>;

/**
 * A list/map whose walk visited at least this many values is remembered (its size and
 * depth): met again, it costs one lookup. Smaller ones are walked again each time they are
 * met, which costs no more than writing them would; a shared part big enough to matter, or
 * any parent of shared parts, is remembered, so a bomb's levels are walked once each.
 */
const REMEMBER_VISITS = 64;

/**
 * Past this depth the lists/maps on the path are tracked, so that a cycle is found even with
 * no depth limit (under it, the depth limit finds it).
 */
const TRACK_DEPTH = 1000;

interface Frame {
  readonly node: object;
  readonly children: readonly unknown[];
  i: number;
  bytes: number;
  /** Deepest child list/map (0: none). */
  depth: number;
  /** Values walked under it (shared parts counted as when first walked). */
  visits: number;
  readonly tracked: boolean;
}

interface Remembered extends ValueSize {
  readonly visits: number;
}

/**
 * The JSON length of a value that is not walked into, or -1 for a list or map. Buffers are
 * counted as base64, dates as their ISO text.
 */
function leafBytes(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return value.length + 2;
    case 'number':
      return Number.isFinite(value) ? String(value).length : 9;
    case 'boolean':
      return value ? 4 : 5;
    case 'bigint':
      // Hex digits are linear to produce; decimal takes about 1.2 times as many.
      return Math.ceil(value.toString(16).length * 1.21);
    case 'object':
      if (value === null) return 4;
      if (value instanceof Uint8Array) return Math.ceil(value.length / 3) * 4 + 2;
      if (value instanceof Date) return 26;
      return -1;
    default:
      // undefined, functions, symbols: `null` in a list, left out of a map.
      return 4;
  }
}

function isOmitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

function openFrame(node: object, tracked: boolean): Frame {
  if (Array.isArray(node)) {
    const items: readonly unknown[] = node;
    const bytes = 2 + Math.max(0, items.length - 1);
    return { node, children: items, i: 0, bytes, depth: 0, visits: 1, tracked };
  }
  const children: unknown[] = [];
  let bytes = 2;
  for (const key of Object.keys(node)) {
    const v: unknown = Reflect.get(node, key);
    if (isOmitted(v)) continue;
    bytes += key.length + (children.length === 0 ? 3 : 4);
    children.push(v);
  }
  return { node, children, i: 0, bytes, depth: 0, visits: 1, tracked };
}

/**
 * Measures a value's depth and the length of its JSON text, shared references counted each
 * time they would be written, and refuses it past `limits` before anything is built. A
 * shared part is walked once when it is big, again (as cheaply as writing it) when it is
 * small, so the work follows the value's distinct parts, not what they expand to.
 *
 * @param limits - `maxDepth` and `maxDecodedBytes` (the longest text). @default DEFAULT_DECODE_LIMITS
 * @param label - Heads the error message, e.g. `result of task <id>`. @default undefined
 * @throws {@link EncodeLimitError} `TOO_DEEP` (deeper than maxDepth, or a cycle) or
 *   `BODY_TOO_LARGE` (longer than maxDecodedBytes).
 * @example
 * ```ts
 * measureValue([[1], 'ab']); // { depth: 2, bytes: 10 }
 * ```
 */
export function measureValue(
  value: unknown,
  limits: WriteLimits = DEFAULT_DECODE_LIMITS,
  label?: string,
): ValueSize {
  const { maxDepth, maxDecodedBytes: maxBytes } = limits;
  const fail = (code: ErrorCode, limit: keyof WriteLimits, what: string): EncodeLimitError =>
    new EncodeLimitError(
      `${label === undefined || label === '' ? '' : `${label}: `}${what} (limit ${limit} = ${limits[limit]})`,
      limit,
      limits[limit],
      { code },
    );
  const tooLarge = (): EncodeLimitError =>
    fail('BODY_TOO_LARGE', 'maxDecodedBytes', `value written out exceeds ${maxBytes} bytes`);
  const tooDeep = (): EncodeLimitError =>
    fail('TOO_DEEP', 'maxDepth', `value nested more than ${maxDepth} levels deep`);

  const leaf = leafBytes(value);
  if (leaf >= 0 || value === null || typeof value !== 'object') {
    if (leaf > maxBytes) throw tooLarge();
    return { depth: 0, bytes: leaf };
  }
  const memo = new Map<object, Remembered>();
  const onPath = new Set<object>();
  const stack: Frame[] = [];
  const open = (node: object): void => {
    if (stack.length >= maxDepth) throw tooDeep();
    const tracked = stack.length >= TRACK_DEPTH;
    if (tracked) {
      if (onPath.has(node)) throw fail('TOO_DEEP', 'maxDepth', 'value refers to itself (a cycle)');
      onPath.add(node);
    }
    stack.push(openFrame(node, tracked));
  };
  open(value);
  for (;;) {
    const top = stack[stack.length - 1];
    if (top === undefined) break;
    if (top.i < top.children.length) {
      const child = top.children[top.i++];
      const size = leafBytes(child);
      top.visits++;
      if (size >= 0) {
        top.bytes += size;
        if (top.bytes > maxBytes) throw tooLarge();
        continue;
      }
      // leafBytes is -1 only for a non-null object.
      if (typeof child !== 'object' || child === null) continue;
      const known = memo.size === 0 ? undefined : memo.get(child);
      if (known === undefined) {
        open(child);
        continue;
      }
      if (stack.length + known.depth > maxDepth) throw tooDeep();
      top.bytes += known.bytes;
      top.visits += known.visits;
      if (known.depth > top.depth) top.depth = known.depth;
      if (top.bytes > maxBytes) throw tooLarge();
      continue;
    }
    stack.pop();
    if (top.tracked) onPath.delete(top.node);
    const done: Remembered = { depth: top.depth + 1, bytes: top.bytes, visits: top.visits };
    if (top.visits >= REMEMBER_VISITS) memo.set(top.node, done);
    const parent = stack[stack.length - 1];
    if (parent === undefined) return { depth: done.depth, bytes: done.bytes };
    parent.bytes += done.bytes;
    parent.visits += done.visits;
    if (done.depth > parent.depth) parent.depth = done.depth;
    if (parent.bytes > maxBytes) throw tooLarge();
  }
  return { depth: 0, bytes: 0 };
}

/**
 * How {@link writeValue} spells values: the text of scalars, the brackets and separators of
 * lists and maps.
 */
export interface ValueFormat {
  /** Applied to every value before it is written (e.g. `toJSON`). @default none */
  prepare?(value: unknown): unknown;
  /** The text of a value that is not walked into, or undefined for a list/map to walk. */
  leaf(value: unknown): string | undefined;
  /** True for a map member left out (JSON: undefined, functions, symbols). */
  omit(value: unknown): boolean;
  /** Written for a list item that {@link omit} would leave out of a map. */
  readonly omittedItem: string;
  /** `[`, `]`, `{`, `}`. */
  readonly brackets: readonly [string, string, string, string];
  /** Between items. */
  readonly separator: string;
  /** A map key with what follows it (JSON `"k":`). */
  key(key: string): string;
  /** Written instead of a list/map deeper than `maxDepth` (repr: `...`). */
  readonly tooDeep: string;
}

/** Options of {@link writeValue}. */
export interface WriteOptions {
  /** Longest output, in characters. @default Infinity */
  maxLength?: number | undefined;
  /** Past maxLength: `cut` ends the text with `...`; `throw` raises an EncodeLimitError. @default 'cut' */
  overflow?: 'cut' | 'throw' | undefined;
  /** Lists/maps deeper than this are written as the format's `tooDeep`. @default Infinity */
  maxDepth?: number | undefined;
  /** Heads the error message. @default undefined */
  label?: string | undefined;
}

interface WriteFrame {
  readonly keys: readonly string[] | null;
  readonly values: readonly unknown[];
  i: number;
  readonly close: string;
}

/**
 * Writes a value in `format` with an explicit stack (no recursion, any depth), stopping at
 * `maxLength` characters, so the work is bounded by the output even for a value whose
 * shared references expand exponentially.
 *
 * @throws {@link EncodeLimitError} `BODY_TOO_LARGE` past maxLength with `overflow: 'throw'`;
 *   what the format's `leaf` throws.
 * @example
 * ```ts
 * writeValue({ a: [1, 2] }, JSON_FORMAT); // '{"a":[1,2]}'
 * ```
 */
export function writeValue(value: unknown, format: ValueFormat, options: WriteOptions = {}): string {
  const maxLength = options.maxLength ?? Infinity;
  const maxDepth = options.maxDepth ?? Infinity;
  const [openList, closeList, openMap, closeMap] = format.brackets;
  let out = '';
  const stack: WriteFrame[] = [];
  /** Writes a prepared value: its text, or its opening bracket (and pushes a frame). */
  const put = (v: unknown): void => {
    const text = format.leaf(v);
    if (text !== undefined) {
      out += text;
      return;
    }
    if (stack.length >= maxDepth) {
      out += format.tooDeep;
      return;
    }
    if (Array.isArray(v)) {
      out += openList;
      stack.push({ keys: null, values: v, i: 0, close: closeList });
      return;
    }
    if (typeof v !== 'object' || v === null) {
      out += format.omittedItem; // a format whose leaf() leaves a scalar to walk
      return;
    }
    const keys: string[] = [];
    const values: unknown[] = [];
    for (const key of Object.keys(v)) {
      const member = prepare(format, Reflect.get(v, key));
      if (format.omit(member)) continue;
      keys.push(key);
      values.push(member);
    }
    out += openMap;
    stack.push({ keys, values, i: 0, close: closeMap });
  };
  put(prepare(format, value));
  while (out.length <= maxLength) {
    const top = stack[stack.length - 1];
    if (top === undefined) return out;
    if (top.i >= top.values.length) {
      stack.pop();
      out += top.close;
      continue;
    }
    const i = top.i++;
    if (i > 0) out += format.separator;
    if (top.keys === null) {
      const item = prepare(format, top.values[i]);
      if (format.omit(item)) out += format.omittedItem;
      else put(item);
    } else {
      out += format.key(top.keys[i] ?? '');
      put(top.values[i]);
    }
  }
  if (options.overflow === 'throw') {
    const head = options.label === undefined || options.label === '' ? '' : `${options.label}: `;
    throw new EncodeLimitError(
      `${head}value written out exceeds ${maxLength} characters (limit maxDecodedBytes = ${maxLength})`,
      'maxDecodedBytes',
      maxLength,
    );
  }
  return `${out.slice(0, Math.max(0, maxLength - 3))}...`;
}

function prepare(format: ValueFormat, value: unknown): unknown {
  return format.prepare === undefined ? value : format.prepare(value);
}

/** `toJSON` as JSON.stringify applies it (Dates become their ISO text). */
function toJson(value: unknown): unknown {
  if (value !== null && typeof value === 'object') {
    const toJSON: unknown = Reflect.get(value, 'toJSON');
    if (typeof toJSON === 'function') return toJSON.call(value);
  }
  return value;
}

/**
 * JSON as `JSON.stringify` writes it (toJSON applied, undefined/functions/symbols left out of
 * maps and `null` in lists, non-finite numbers `null`); a bigint is an EncodeError.
 */
export const JSON_FORMAT: ValueFormat = Object.freeze({
  prepare: toJson,
  leaf: jsonLeaf,
  omit: isOmitted,
  omittedItem: 'null',
  brackets: ['[', ']', '{', '}'] as const,
  separator: ',',
  key: (key: string) => `${JSON.stringify(key)}:`,
  tooDeep: 'null',
});

function jsonLeaf(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      return value === null ? 'null' : undefined;
    case 'bigint':
      throw new EncodeError('cannot encode a bigint as json');
    default:
      return 'null';
  }
}

/**
 * JSON as Python's `json.dumps` writes it: {@link JSON_FORMAT} with `NaN`, `Infinity` and
 * `-Infinity` tokens.
 */
export const PYTHON_JSON_FORMAT: ValueFormat = Object.freeze({
  ...JSON_FORMAT,
  leaf: (value: unknown) => {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      if (Number.isNaN(value)) return 'NaN';
      return value > 0 ? 'Infinity' : '-Infinity';
    }
    return jsonLeaf(value);
  },
});

/** Options of {@link writeJson}. */
export interface WriteJsonOptions {
  /** `maxDepth` and `maxDecodedBytes` (the longest text). @default DEFAULT_DECODE_LIMITS */
  limits?: WriteLimits | undefined;
  /** Heads error messages. @default undefined */
  label?: string | undefined;
  /** The JSON dialect. @default JSON_FORMAT */
  format?: ValueFormat | undefined;
}

/**
 * JSON text of any value the limits allow, at any depth: measured first ({@link measureValue}:
 * a bomb or cycle is refused before anything is written), then written without recursion.
 *
 * @throws {@link EncodeLimitError} (`TOO_DEEP`, `BODY_TOO_LARGE`); {@link EncodeError} for a bigint.
 * @example
 * ```ts
 * writeJson({ a: [1, NaN] }, { format: PYTHON_JSON_FORMAT }); // '{"a":[1,NaN]}'
 * ```
 */
export function writeJson(value: unknown, options: WriteJsonOptions = {}): string {
  const limits = options.limits ?? DEFAULT_DECODE_LIMITS;
  measureValue(value, limits, options.label);
  return writeValue(value, options.format ?? JSON_FORMAT, {
    maxLength: limits.maxDecodedBytes,
    overflow: 'throw',
    label: options.label,
  });
}
