/**
 * Limits on what decoding a received body may cost, applied by default wherever a body is
 * decompressed or deserialized ({@link decompress}, {@link loads}, `Message.decode`), so
 * every door (result backends, the Worker, the CLI) is bounded without wiring.
 *
 * Each limit crossed is a {@link DecodeLimitError} whose `code` says which kind
 * (`BODY_TOO_LARGE`, `TOO_DEEP`, `TOO_MANY_ALIASES`, `MEMO_TOO_LARGE`) and whose message
 * names the limit (and the task, when the caller passes a label).
 *
 * @module
 */
import { ArgumentError, DecodeLimitError } from '../errors.js';
import type { ErrorCode } from '../errors.js';

/**
 * The decode limits. Every field is a count (bytes, levels, nodes or entries); `Infinity`
 * turns a limit off. The defaults fit real results with a wide margin.
 *
 * @example
 * ```ts
 * const limits: Partial<DecodeLimits> = { maxDecodedBytes: 8 * 1024 * 1024, maxDepth: 200 };
 * loads(body, 'application/json', 'utf-8', { limits, label: `task ${taskId}` });
 * ```
 */
export interface DecodeLimits {
  /**
   * Largest body as received, in bytes (compressed when it is compressed).
   * @default 67108864 (64 MiB)
   */
  maxBodyBytes: number;
  /**
   * Largest body once decompressed, in bytes: decompression stops as soon as its output
   * passes this size, so a decompression bomb is never inflated in full. Also the largest
   * serialized text a deserializer is given.
   * @default 67108864 (64 MiB)
   */
  maxDecodedBytes: number;
  /**
   * Deepest nesting of lists/maps (JSON, msgpack, YAML, pickle). A top-level list is depth 1.
   * A reference cycle (pickle, YAML) counts as infinitely deep.
   * @default 1000
   */
  maxDepth: number;
  /**
   * Most collections (lists, maps, tuples, sets, objects) that repeated references may add
   * when the value is expanded: each YAML alias, or pickle memo reference to a collection,
   * counts every collection it stands for, its own repeated references included. Stops
   * "billion laughs" documents, which decode small but expand exponentially for anything
   * that walks them. Repeated scalars (a shared string) count 0.
   * @default 1000000
   */
  maxAliasExpansion: number;
  /**
   * Most collections (lists, maps, tuples, sets, objects) one body may build. Each costs
   * tens of bytes while its text can take one or two (`[]`, msgpack `0x90`, pickle `]`), so
   * this bounds the memory a body of {@link maxDecodedBytes} can claim.
   * @default 1000000
   */
  maxCollections: number;
  /**
   * Most entries in a pickle's memo (the table of objects a pickle refers back to).
   * @default 1000000
   */
  maxPickleMemo: number;
}

/**
 * The default limits (see {@link DecodeLimits} for each).
 *
 * @example
 * ```ts
 * DEFAULT_DECODE_LIMITS.maxDepth; // 1000
 * ```
 */
export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxBodyBytes: 64 * 1024 * 1024,
  maxDecodedBytes: 64 * 1024 * 1024,
  maxDepth: 1000,
  maxAliasExpansion: 1_000_000,
  maxCollections: 1_000_000,
  maxPickleMemo: 1_000_000,
});

const LIMIT_NAMES: readonly (keyof DecodeLimits)[] = [
  'maxBodyBytes',
  'maxDecodedBytes',
  'maxDepth',
  'maxAliasExpansion',
  'maxCollections',
  'maxPickleMemo',
];

/**
 * How far one decode may go, as its caller asks ({@link loads}, `decompress`, `decodeBody`,
 * a received Message); resolved into a {@link DecodeContext}.
 *
 * @example
 * ```ts
 * loads(body, 'application/json', 'utf-8', { limits: { maxDepth: 50 }, label: `task ${id}` });
 * ```
 */
export interface DecodeOptions {
  /**
   * Largest decoded size in bytes (decompressed, or deserialized): overrides
   * `limits.maxDecodedBytes`. A larger output raises a {@link DecodeLimitError} with code
   * `BODY_TOO_LARGE`, without a compressed body ever being inflated fully.
   * @default undefined (the limits' maxDecodedBytes, 64 MiB by default)
   */
  maxBytes?: number | undefined;
  /**
   * Decode limits (`maxBodyBytes` bounds a compressed input); missing fields take
   * {@link DEFAULT_DECODE_LIMITS}. @default DEFAULT_DECODE_LIMITS
   */
  limits?: Partial<DecodeLimits> | undefined;
  /** Names what is decoded at the head of limit errors, e.g. `task 0b4c...`. @default undefined */
  label?: string | undefined;
}

/**
 * What a decoder needs besides the bytes: the limits in force and a label naming what is
 * decoded (e.g. `task 0b4c...`), put at the head of every limit error.
 */
export interface DecodeContext {
  /** The limits in force. */
  readonly limits: Readonly<DecodeLimits>;
  /** Names what is decoded in error messages, e.g. `task <id>`. @default undefined */
  readonly label?: string | undefined;
}

/** Limits {@link resolveDecodeLimits} returned (frozen, checked). */
const RESOLVED = new WeakSet<object>();

function isResolved(limits: object): limits is Readonly<DecodeLimits> {
  return limits === DEFAULT_DECODE_LIMITS || RESOLVED.has(limits);
}

/**
 * Fills in the defaults and checks every value.
 *
 * @throws {@link ArgumentError} for a limit that is not a non-negative integer or Infinity,
 * or an unknown limit name.
 * @example
 * ```ts
 * resolveDecodeLimits({ maxDepth: 50 }).maxDecodedBytes; // 67108864
 * ```
 */
export function resolveDecodeLimits(limits: Partial<DecodeLimits> | undefined): Readonly<DecodeLimits> {
  if (limits === undefined) return DEFAULT_DECODE_LIMITS;
  if (limits === null || typeof limits !== 'object') {
    throw new ArgumentError(`decode limits must be an object, got ${String(limits)}`);
  }
  // A worker or backend passes the limits it resolved once with every message it decodes.
  if (isResolved(limits)) return limits;
  const out: DecodeLimits = { ...DEFAULT_DECODE_LIMITS };
  for (const [name, value] of Object.entries(limits)) {
    if (!isLimitName(name)) throw new ArgumentError(`unknown decode limit ${JSON.stringify(name)}`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value === Infinity || (Number.isSafeInteger(value) && value >= 0))) {
      throw new ArgumentError(
        `decode limit ${name} must be a non-negative integer or Infinity, got ${String(value)}`,
      );
    }
    out[name] = value;
  }
  // Frozen, so that what was checked stays true.
  RESOLVED.add(Object.freeze(out));
  return out;
}

/**
 * The context decoders get: limits resolved (with `maxBytes` as maxDecodedBytes) and label.
 *
 * @example
 * ```ts
 * decodeContext({ maxDepth: 10 }, undefined, 'task 1').limits.maxDepth; // 10
 * ```
 */
export function decodeContext(
  limits: Partial<DecodeLimits> | undefined,
  maxBytes?: number | undefined,
  label?: string | undefined,
): DecodeContext {
  let resolved = resolveDecodeLimits(limits);
  if (maxBytes !== undefined) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new ArgumentError(`maxBytes must be a non-negative integer, got ${String(maxBytes)}`);
    }
    resolved = Object.assign({}, resolved, { maxDecodedBytes: maxBytes });
  }
  return label === undefined ? { limits: resolved } : { limits: resolved, label };
}

function isLimitName(name: string): name is keyof DecodeLimits {
  return (LIMIT_NAMES as readonly string[]).includes(name);
}

/**
 * The error for a crossed limit: `<label>: <what> (limit <name> = <max>)`.
 *
 * @example
 * ```ts
 * throw limitError(ctx, 'TOO_DEEP', 'maxDepth', 'JSON nested deeper than allowed');
 * ```
 */
export function limitError(
  ctx: DecodeContext,
  code: ErrorCode,
  limit: keyof DecodeLimits,
  what: string,
  cause?: unknown,
): DecodeLimitError {
  const max = ctx.limits[limit];
  const head = ctx.label === undefined || ctx.label === '' ? '' : `${ctx.label}: `;
  return new DecodeLimitError(`${head}${what} (limit ${limit} = ${max})`, limit, max, {
    code,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Checks JSON text against `maxDepth` (`TOO_DEEP`) and `maxCollections`
 * (`BODY_TOO_LARGE`) before it is parsed. Strings are skipped; malformed text is left for
 * the parser to report. Linear, no recursion.
 *
 * @example
 * ```ts
 * checkJsonShape('[[1]]', ctx); // depth 2, 2 collections
 * ```
 */
export function checkJsonShape(text: string, ctx: DecodeContext): void {
  const { maxDepth, maxCollections } = ctx.limits;
  // Each level or collection costs two characters at least: shorter text cannot cross.
  if (text.length <= 2 * Math.min(maxDepth, maxCollections)) return;
  let depth = 0;
  let collections = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Jump to the closing quote: the next one not escaped by an odd run of backslashes.
      let close = text.indexOf('"', i + 1);
      while (close > 0) {
        let slashes = 0;
        while (text.charCodeAt(close - 1 - slashes) === 0x5c /* \ */) slashes++;
        if (slashes % 2 === 0) break;
        close = text.indexOf('"', close + 1);
      }
      if (close < 0) return; // unterminated: the parser reports it
      i = close;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) {
        throw limitError(ctx, 'TOO_DEEP', 'maxDepth', `JSON body nested more than ${maxDepth} levels deep`);
      }
      if (++collections > maxCollections) throw tooManyCollections(ctx, 'JSON');
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
}

function tooManyCollections(ctx: DecodeContext, what: string): DecodeLimitError {
  return limitError(ctx, 'BODY_TOO_LARGE', 'maxCollections', `${what} body holds too many lists/maps`);
}

/**
 * Checks msgpack bytes against `maxDepth` (`TOO_DEEP`) and `maxCollections`
 * (`BODY_TOO_LARGE`), reading only the type headers (nothing is built). Malformed or
 * truncated bytes are left for the decoder to report.
 *
 * @example
 * ```ts
 * checkMsgpackShape(Buffer.from([0x91, 0x91, 0x01]), ctx); // depth 2
 * ```
 */
export function checkMsgpackShape(bytes: Uint8Array, ctx: DecodeContext): void {
  // Each level or collection costs one byte at least.
  if (bytes.length <= Math.min(ctx.limits.maxDepth, ctx.limits.maxCollections)) return;
  try {
    scanMsgpack(bytes, ctx);
  } catch (err) {
    // A length field cut off by the end of the body: truncated, the decoder reports it.
    if (err instanceof RangeError) return;
    throw err;
  }
}

function scanMsgpack(bytes: Uint8Array, ctx: DecodeContext): void {
  const { maxDepth, maxCollections } = ctx.limits;
  let collections = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  /** Items still to read in each open container, innermost last. */
  const remaining: number[] = [];
  let pos = 0;
  const n = bytes.length;
  while (pos < n) {
    const b = bytes[pos++] ?? 0;
    let items = 0; // > 0: a container of that many items opens
    let skip = 0; // payload bytes to skip
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) skip = 0;
    else if (b <= 0x8f) items = (b & 0x0f) * 2;
    else if (b <= 0x9f) items = b & 0x0f;
    else if (b <= 0xbf) skip = b & 0x1f;
    else {
      switch (b) {
        case 0xc4:
        case 0xd9:
          skip = 1 + (bytes[pos] ?? 0);
          break;
        case 0xc5:
        case 0xda:
          skip = 2 + view.getUint16(pos);
          break;
        case 0xc6:
        case 0xdb:
          skip = 4 + view.getUint32(pos);
          break;
        case 0xc7:
          skip = 2 + (bytes[pos] ?? 0);
          break;
        case 0xc8:
          skip = 3 + view.getUint16(pos);
          break;
        case 0xc9:
          skip = 5 + view.getUint32(pos);
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xd4:
          skip = 2;
          break;
        case 0xd5:
          skip = 3;
          break;
        case 0xd6:
          skip = 5;
          break;
        case 0xd7:
          skip = 9;
          break;
        case 0xd8:
          skip = 17;
          break;
        case 0xdc:
          items = view.getUint16(pos);
          skip = 2;
          break;
        case 0xdd:
          items = view.getUint32(pos);
          skip = 4;
          break;
        case 0xde:
          items = view.getUint16(pos) * 2;
          skip = 2;
          break;
        case 0xdf:
          items = view.getUint32(pos) * 2;
          skip = 4;
          break;
        default:
          return; // 0xc1: never used; the decoder reports it
      }
    }
    pos += skip;
    if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)) {
      if (++collections > maxCollections) throw tooManyCollections(ctx, 'msgpack');
      // An empty container is a level too.
      if (remaining.length + 1 > maxDepth) {
        throw limitError(
          ctx,
          'TOO_DEEP',
          'maxDepth',
          `msgpack body nested more than ${maxDepth} levels deep`,
        );
      }
      if (items > 0) {
        remaining.push(items);
        continue;
      }
    }
    // A scalar or an empty container completes one item of each container it closes.
    for (;;) {
      const top = remaining.length - 1;
      if (top < 0) return; // the root value is complete
      const left = (remaining[top] ?? 1) - 1;
      if (left > 0) {
        remaining[top] = left;
        break;
      }
      remaining.pop();
    }
  }
}
