/**
 * Message body serialization, wire-compatible with kombu's serializer registry
 * (`kombu.serialization`): a registry of named serializers keyed by name and content type,
 * `dumps` to encode and `loads` to decode with an accept list.
 *
 * Built-ins: json, msgpack, yaml (safe), raw bytes (`application/data`), text
 * (`text/plain`) and pickle (`application/x-python-serialize`), which is decoded only when
 * the accept list names it (never by default), by a reader that calls nothing from the
 * stream (see {@link pickleLoads}), and encoded from plain data only (see {@link pickleDumps}).
 *
 * Every decode is bounded by {@link DecodeLimits} (size, depth, collections, YAML aliases,
 * pickle memo), with defaults when the caller gives none.
 *
 * @module
 */
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { DUMP_SCHEMA, dump as yamlDump } from 'js-yaml';
import {
  ArgumentError,
  ContentDisallowedError,
  DecodeError,
  DecodeLimitError,
  EncodeError,
} from '../errors.js';
import type { DecodeContext, DecodeLimits, DecodeOptions } from './decode-limits.js';
import {
  checkJsonShape,
  checkMsgpackShape,
  decodeContext,
  limitError,
  resolveDecodeLimits,
} from './decode-limits.js';
import { pickleLoads } from './pickle.js';
import { pickleDumps } from './pickle-encoder.js';
import { PYTHON_JSON_FORMAT, measureValue, writeValue } from './value-writer.js';
import { yamlLoadBounded } from './yaml-bounded.js';

/**
 * The content type kombu uses for pickle. Decoded only when an accept list names it:
 * Python's own pickle runs code from the stream; this library's reader does not.
 */
export const PICKLE_CONTENT_TYPE = 'application/x-python-serialize';

/** What a serializer provides: its wire labels and its codec. */
export interface SerializerDefinition {
  /** MIME type put in the message's `content_type` property, e.g. `application/json`. */
  readonly contentType: string;
  /** Value of the `content_encoding` property, e.g. `utf-8` or `binary`. */
  readonly contentEncoding: string;
  /** Turns a value into body bytes. Throws on values it cannot represent. */
  encode(data: unknown): Buffer;
  /**
   * Turns body bytes back into a value. Throws on malformed input. `ctx` carries the
   * {@link DecodeLimits} in force, for decoders that can honour them.
   */
  decode(body: Buffer, ctx: DecodeContext): unknown;
}

/** A registered serializer: its definition plus the name it was registered under. */
export interface Serializer extends SerializerDefinition {
  /** The registry name, e.g. `json`. */
  readonly name: string;
}

/** An encoded body with the message properties that describe it. */
export interface EncodedBody {
  /** The body bytes. */
  body: Buffer;
  /** The `content_type` property. */
  contentType: string;
  /** The `content_encoding` property. */
  contentEncoding: string;
}

/** Options of {@link loads}: the accept list, and the {@link DecodeOptions} limits. */
export interface LoadsOptions extends DecodeOptions {
  /**
   * Content types or serializer names allowed. `undefined` allows every registered type
   * (kombu's `accept=None`) except pickle, which must be named to be decoded.
   * `application/data` and `text/plain` are always allowed.
   * @default undefined
   */
  accept?: ReadonlySet<string> | readonly string[] | undefined;
}

/** Content types kombu always trusts: they are returned as bytes or text, never parsed. */
const TRUSTED_CONTENT: ReadonlySet<string> = new Set(['application/data', 'application/text', 'text/plain']);

/** Content encodings that mean "leave the bytes alone" (kombu's SKIP_DECODE). */
const SKIP_DECODE: ReadonlySet<string> = new Set(['binary', 'ascii-8bit']);

const byName = new Map<string, Serializer>();
const byType = new Map<string, Serializer>();
/** Every name → content type ever known, so `prepareAcceptContent('pickle')` works. */
const nameToType = new Map<string, string>();
const typeToName = new Map<string, string>();

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Registers (or replaces) a serializer under a name and a content type, like kombu's
 * `register(name, encoder, decoder, content_type, content_encoding)`.
 *
 * Registering `pickle` replaces the built-in pickle reader (and lets `dumps` encode pickle
 * when the definition can); pickle content is still decoded only when an accept list names it.
 *
 * @throws {@link ArgumentError} for an empty name or a content type without `/`.
 * @example
 * ```ts
 * registerSerializer('upper', {
 *   contentType: 'application/x-upper', contentEncoding: 'utf-8',
 *   encode: (d) => Buffer.from(String(d).toUpperCase()), decode: (b) => b.toString('utf8'),
 * });
 * ```
 */
export function registerSerializer(name: string, definition: SerializerDefinition): void {
  if (typeof name !== 'string' || name.length === 0 || name.includes('/')) {
    throw new ArgumentError(`invalid serializer name ${JSON.stringify(name)}`);
  }
  const { contentType, contentEncoding, encode, decode } = definition;
  if (typeof contentType !== 'string' || !contentType.includes('/')) {
    throw new ArgumentError(`invalid content type ${JSON.stringify(contentType)} for serializer ${name}`);
  }
  if (typeof encode !== 'function' || typeof decode !== 'function') {
    throw new ArgumentError(`serializer ${name} needs encode and decode functions`);
  }
  const previous = byName.get(name);
  if (previous !== undefined) unregisterSerializer(name);
  const entry: Serializer = Object.freeze({ name, contentType, contentEncoding, encode, decode });
  byName.set(name, entry);
  byType.set(contentType, entry);
  nameToType.set(name, contentType);
  typeToName.set(contentType, name);
}

/**
 * Removes a serializer by name (kombu's `unregister`). Unknown names are ignored.
 *
 * @example
 * ```ts
 * unregisterSerializer('yaml');
 * loads(body, 'application/x-yaml', 'utf-8'); // now returned as text, not parsed
 * ```
 */
export function unregisterSerializer(name: string): void {
  const entry = byName.get(name);
  if (entry === undefined) return;
  byName.delete(name);
  if (byType.get(entry.contentType) === entry) byType.delete(entry.contentType);
  if (nameToType.get(name) === entry.contentType) nameToType.delete(name);
  if (typeToName.get(entry.contentType) === name) typeToName.delete(entry.contentType);
}

/**
 * The registered serializer of that name, or undefined.
 *
 * @example
 * ```ts
 * serializerByName('json')?.contentType; // 'application/json'
 * ```
 */
export function serializerByName(name: string): Serializer | undefined {
  return byName.get(name);
}

/**
 * The content type for a serializer name.
 *
 * @throws {@link ArgumentError} for an unknown name.
 * @example
 * ```ts
 * contentTypeFor('msgpack'); // 'application/x-msgpack'
 * ```
 */
export function contentTypeFor(name: string): string {
  const type = nameToType.get(name);
  if (type === undefined) throw new ArgumentError(`No encoder installed for ${name}`);
  return type;
}

/**
 * Turns a list of serializer names and/or MIME types into a set of MIME types, like
 * kombu's `prepare_accept_content`.
 *
 * @throws {@link ArgumentError} for a name that is not a known serializer.
 * @example
 * ```ts
 * prepareAcceptContent(['json', 'application/x-msgpack']); // Set {'application/json', 'application/x-msgpack'}
 * ```
 */
export function prepareAcceptContent(names: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const name of names) {
    if (typeof name !== 'string')
      throw new ArgumentError(`accept entries must be strings, got ${typeof name}`);
    if (name.includes('/')) {
      out.add(name);
      continue;
    }
    const type = nameToType.get(name);
    if (type === undefined)
      throw new ArgumentError(`unknown serializer ${JSON.stringify(name)} in accept list`);
    out.add(type);
  }
  return out;
}

/** Options of {@link dumps}. */
export interface DumpsOptions {
  /**
   * A list or map deeper than `maxDepth`, or longer than `maxDecodedBytes` once written (shared
   * references counted each time), is refused before it is encoded: what a reader with the
   * same limits would refuse is never written, and a decoded alias bomb passed back out
   * never expands. @default DEFAULT_DECODE_LIMITS
   */
  limits?: Partial<DecodeLimits> | undefined;
  /** Heads limit errors, e.g. `result of task <id>`. @default undefined */
  label?: string | undefined;
}

/** Deepest value given to the native JSON.stringify (recursive); deeper ones are written iteratively. */
const NATIVE_JSON_DEPTH = 1000;

/**
 * Encodes a value for publishing, like kombu's `dumps`.
 *
 * With no serializer: a Buffer/Uint8Array is sent raw (`application/data`, `binary`), a
 * string as text (`text/plain`, `utf-8`), anything else as json. `raw` accepts bytes or a
 * string; `text` accepts a string. Lists and maps are first measured against the limits
 * (see {@link DumpsOptions.limits}).
 *
 * @param serializer - A registered serializer name. @default undefined (auto, see above)
 * @param options - Limits and label. @default {}
 * @throws {@link EncodeError} when the value cannot be represented (a bigint in json, a
 * function, ...); {@link EncodeLimitError} (`TOO_DEEP`: too deep or a cycle;
 * `BODY_TOO_LARGE`) past the limits; {@link ArgumentError} for an unknown serializer name.
 * @example
 * ```ts
 * const { body, contentType, contentEncoding } = dumps({ status: 'SUCCESS' }, 'json');
 * ```
 */
export function dumps(data: unknown, serializer?: string, options: DumpsOptions = {}): EncodedBody {
  let entry: Serializer | undefined;
  if (serializer === undefined) {
    if (data instanceof Uint8Array) return rawBody(data);
    entry = typeof data === 'string' ? TEXT : JSON_SERIALIZER;
  } else if (serializer === 'raw' && byName.get('raw') === RAW) {
    if (data instanceof Uint8Array || typeof data === 'string') return rawEncode(data);
    throw new EncodeError(`raw needs a Buffer, Uint8Array or string, got ${typeof data}`);
  } else {
    entry = byName.get(serializer);
    if (entry === undefined) throw new ArgumentError(`No encoder installed for ${serializer}`);
  }
  let body: Buffer;
  const depth =
    data !== null && typeof data === 'object' && !(data instanceof Uint8Array)
      ? measureValue(data, resolveDecodeLimits(options.limits), options.label).depth
      : 0;
  try {
    body =
      depth > NATIVE_JSON_DEPTH && entry === JSON_SERIALIZER
        ? Buffer.from(writeValue(data, PYTHON_JSON_FORMAT), 'utf8')
        : entry.encode(data);
  } catch (err) {
    if (err instanceof EncodeError) throw err;
    throw new EncodeError(`cannot encode value as ${entry.name}: ${errorText(err)}`, { cause: err });
  }
  return { body, contentType: entry.contentType, contentEncoding: entry.contentEncoding };
}

/**
 * Decodes a message body, like kombu's `loads`.
 *
 * - A missing content type means `application/data`.
 * - Pickle is decoded only when `accept` names it; a type outside `accept` is refused with
 *   kombu's wording ("Refusing to deserialize untrusted content of type json (application/json)").
 * - {@link DecodeLimits} apply (defaults when none are given): a larger body, deeper
 *   nesting, too many collections or aliases raise a {@link DecodeLimitError}.
 * - An empty body is returned as is (kombu does not decode empty payloads).
 * - A type with no registered decoder is returned as a Buffer when its encoding is
 *   `binary` (or missing), else as text decoded with that encoding.
 *
 * @throws {@link ContentDisallowedError} for disallowed content;
 * {@link DecodeError} for malformed bytes (with the parser error as `cause`);
 * {@link DecodeLimitError} (codes `BODY_TOO_LARGE`, `TOO_DEEP`, `TOO_MANY_ALIASES`,
 * `MEMO_TOO_LARGE`) when a limit is crossed, its message headed by `label`.
 * @example
 * ```ts
 * loads(Buffer.from('{"a": NaN}'), 'application/json', 'utf-8', { accept: ['json'] }); // { a: NaN }
 * ```
 */
export function loads(
  body: Buffer,
  contentType: string | undefined,
  contentEncoding: string | undefined,
  options: LoadsOptions = {},
): unknown {
  const type = contentType === undefined || contentType === '' ? 'application/data' : contentType;
  const { accept, maxBytes, label } = options;
  const head = label === undefined || label === '' ? '' : `${label}: `;
  if (type === PICKLE_CONTENT_TYPE && accept === undefined) throw untrusted(type, 'disabled', head);
  if (accept !== undefined && !TRUSTED_CONTENT.has(type) && !isAccepted(accept, type)) {
    throw untrusted(type, 'untrusted', head);
  }
  const ctx = decodeContext(options.limits, maxBytes, label);
  if (body.length > ctx.limits.maxDecodedBytes) {
    throw limitError(
      ctx,
      'BODY_TOO_LARGE',
      'maxDecodedBytes',
      `${type} body of ${body.length} bytes is too large`,
    );
  }
  if (body.length === 0) return body;
  const entry = byType.get(type);
  if (entry !== undefined && entry !== RAW && entry !== TEXT) {
    try {
      return entry.decode(body, ctx);
    } catch (err) {
      // Limit errors already carry the label; anything else gets it and the content type.
      if (err instanceof DecodeLimitError) throw err;
      const code = err instanceof DecodeError ? err.code : 'DECODE_ERROR';
      throw new DecodeError(`${head}cannot decode ${type} body: ${errorText(err)}`, { cause: err, code });
    }
  }
  return decodeByEncoding(body, type, contentEncoding, head);
}

function isAccepted(accept: ReadonlySet<string> | readonly string[], type: string): boolean {
  // Accept may hold names or MIME types: look both up instead of normalizing per call.
  const name = typeToName.get(type);
  if (accept instanceof Set) return accept.has(type) || (name !== undefined && accept.has(name));
  const list = accept as readonly string[];
  return list.includes(type) || (name !== undefined && list.includes(name));
}

function untrusted(type: string, why: 'untrusted' | 'disabled', head: string): ContentDisallowedError {
  const name = typeToName.get(type);
  const label = name === undefined || name === type ? type : `${name} (${type})`;
  return new ContentDisallowedError(`${head}Refusing to deserialize ${why} content of type ${label}`);
}

function decodeByEncoding(body: Buffer, type: string, encoding: string | undefined, head: string): unknown {
  const enc = encoding === undefined || encoding === '' ? 'binary' : encoding.toLowerCase();
  if (SKIP_DECODE.has(enc)) return body;
  try {
    return enc === 'utf-8' || enc === 'utf8'
      ? utf8Decoder.decode(body)
      : new TextDecoder(enc, { fatal: true }).decode(body);
  } catch (err) {
    throw new DecodeError(`${head}cannot decode ${type} body as ${enc}: ${errorText(err)}`, { cause: err });
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function rawBody(bytes: Uint8Array): EncodedBody {
  return { body: toBuffer(bytes), contentType: 'application/data', contentEncoding: 'binary' };
}

// ---------------------------------------------------------------------------------------
// JSON, with Python's NaN / Infinity / -Infinity tokens.

/** Set by the replacer when a non-finite number is seen, so only those bodies take the slow path. */
let sawNonFinite = false;

function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      // NaN and ±Infinity are the only numbers for which v - v is not 0.
      if (value - value !== 0) sawNonFinite = true;
      return value;
    case 'bigint':
    case 'function':
    case 'symbol':
      throw new EncodeError(`cannot encode a ${typeof value} as json${key === '' ? '' : ` (at key ${key})`}`);
    default:
      return value;
  }
}

/** JSON text as Python's json.dumps would write it: JSON.stringify plus NaN/Infinity tokens. */
function jsonStringify(data: unknown): string {
  sawNonFinite = false;
  let text: string | undefined;
  try {
    text = JSON.stringify(data, jsonReplacer);
  } catch (err) {
    if (err instanceof EncodeError) throw err;
    throw new EncodeError(`cannot encode value as json: ${errorText(err)}`, { cause: err });
  }
  if (text === undefined) throw new EncodeError(`cannot encode ${typeof data} as json`);
  // JSON.stringify turned NaN/Infinity into null; re-encode those rare bodies with the tokens.
  return sawNonFinite ? writeValue(data, PYTHON_JSON_FORMAT) : text;
}

/**
 * Parses JSON text, including Python's NaN / Infinity / -Infinity tokens. Normal text goes
 * straight to JSON.parse; only text JSON.parse rejects is scanned for those tokens.
 */
function jsonParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!text.includes('NaN') && !text.includes('Infinity')) throw err;
    return parsePythonJson(text, err);
  }
}

function parsePythonJson(text: string, original: unknown): unknown {
  // Replace the bare tokens (outside strings) by sentinel strings, then map them back in a
  // reviver. A random nonce keeps a genuine string from being mistaken for a sentinel.
  const nonce = `\u0000py-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const sentinels = new Map<string, number>([
    [`${nonce}NaN`, NaN],
    [`${nonce}Inf`, Infinity],
    [`${nonce}-Inf`, -Infinity],
  ]);
  let out = '';
  let last = 0;
  let replaced = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // Skip the string literal, honouring backslash escapes.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      continue;
    }
    let token: string | undefined;
    let sentinel = '';
    if (c === 0x4e /* N */ && text.startsWith('NaN', i)) [token, sentinel] = ['NaN', `${nonce}NaN`];
    else if (c === 0x49 /* I */ && text.startsWith('Infinity', i))
      [token, sentinel] = ['Infinity', `${nonce}Inf`];
    else if (c === 0x2d /* - */ && text.startsWith('-Infinity', i)) {
      [token, sentinel] = ['-Infinity', `${nonce}-Inf`];
    }
    if (token !== undefined) {
      out += `${text.slice(last, i)}${JSON.stringify(sentinel)}`;
      i += token.length - 1;
      last = i + 1;
      replaced = true;
    }
  }
  if (!replaced) throw original;
  out += text.slice(last);
  return JSON.parse(out, (_key, value: unknown) => {
    if (typeof value === 'string' && value.startsWith(nonce)) {
      const n = sentinels.get(value);
      if (n !== undefined) return n;
    }
    return value;
  });
}

// ---------------------------------------------------------------------------------------
// Built-ins.

const JSON_SERIALIZER: Serializer = Object.freeze({
  name: 'json',
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  encode: (data: unknown) => Buffer.from(jsonStringify(data), 'utf8'),
  decode: (body: Buffer, ctx: DecodeContext) => {
    const text = utf8Decoder.decode(body);
    checkJsonShape(text, ctx);
    return jsonParse(text);
  },
});

const MSGPACK: Serializer = Object.freeze({
  name: 'msgpack',
  contentType: 'application/x-msgpack',
  contentEncoding: 'binary',
  encode: (data: unknown) => toBuffer(msgpackEncode(data)),
  decode: (body: Buffer, ctx: DecodeContext) => {
    checkMsgpackShape(body, ctx);
    return msgpackDecode(body);
  },
});

const YAML: Serializer = Object.freeze({
  name: 'yaml',
  contentType: 'application/x-yaml',
  contentEncoding: 'utf-8',
  // DUMP_SCHEMA only decides quoting: it quotes strings a YAML 1.1 reader (PyYAML) would
  // take for booleans, numbers or dates ('yes', 'on', '1_000'); it constructs nothing.
  encode: (data: unknown) => {
    if (data === undefined || typeof data === 'function' || typeof data === 'symbol') {
      throw new EncodeError(`cannot encode ${typeof data} as yaml`);
    }
    return Buffer.from(yamlDump(data, { schema: DUMP_SCHEMA, noRefs: true }), 'utf8');
  },
  // CORE_SCHEMA: plain data only; any !!python/... tag is an unknown tag and fails.
  decode: (body: Buffer, ctx: DecodeContext) => yamlLoadBounded(utf8Decoder.decode(body), ctx),
});

const PICKLE: Serializer = Object.freeze({
  name: 'pickle',
  contentType: PICKLE_CONTENT_TYPE,
  contentEncoding: 'binary',
  // Plain data only (protocol 2, kombu's default): task bodies for Celery 3.1 workers.
  encode: (data: unknown) => pickleDumps(data),
  decode: (body: Buffer, ctx: DecodeContext) => pickleLoads(body, ctx),
});

const RAW: Serializer = Object.freeze({
  name: 'raw',
  contentType: 'application/data',
  contentEncoding: 'binary',
  encode: (data: unknown) => {
    if (data instanceof Uint8Array) return toBuffer(data);
    throw new EncodeError(`raw needs a Buffer or Uint8Array, got ${typeof data}`);
  },
  decode: (body: Buffer) => body,
});

const TEXT: Serializer = Object.freeze({
  name: 'text',
  contentType: 'text/plain',
  contentEncoding: 'utf-8',
  encode: (data: unknown) => {
    if (typeof data === 'string') return Buffer.from(data, 'utf8');
    throw new EncodeError(`text needs a string, got ${typeof data}`);
  },
  decode: (body: Buffer) => utf8Decoder.decode(body),
});

for (const builtin of [JSON_SERIALIZER, MSGPACK, YAML, PICKLE, RAW, TEXT]) {
  byName.set(builtin.name, builtin);
  byType.set(builtin.contentType, builtin);
  nameToType.set(builtin.name, builtin.contentType);
  typeToName.set(builtin.contentType, builtin.name);
}

/**
 * Like {@link dumps} with `raw`, but a string is sent as `application/data` with encoding
 * `utf-8`, as kombu's `raw_encode` does.
 *
 * @example
 * ```ts
 * rawEncode('hi'); // { body: <68 69>, contentType: 'application/data', contentEncoding: 'utf-8' }
 * ```
 */
export function rawEncode(data: Uint8Array | string): EncodedBody {
  if (typeof data === 'string') {
    return { body: Buffer.from(data, 'utf8'), contentType: 'application/data', contentEncoding: 'utf-8' };
  }
  return rawBody(data);
}
