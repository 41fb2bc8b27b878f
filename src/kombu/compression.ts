/**
 * Message body compression, wire-compatible with kombu's `kombu.compression`: a registry
 * of methods keyed by MIME type with name aliases. The MIME type travels in the message
 * header `compression`.
 *
 * Built-ins: `zlib` and `gzip` (both `application/x-gzip`, and both produce **zlib
 * RFC 1950** bytes, exactly as kombu does despite the name) and `brotli`
 * (`application/x-brotli`). bzip2, lzma and zstd are not built in: Node has no native codec
 * for them; register one with {@link registerCompression} if needed.
 *
 * @module
 */
import { brotliCompressSync, brotliDecompressSync, deflateSync, unzipSync } from 'node:zlib';
import { ArgumentError, DecodeError, EncodeError } from '../errors.js';

/** Compresses a body. */
export type Compressor = (body: Buffer) => Buffer;

/**
 * Decompresses a body. `maxOutputLength`, when given, is the largest output wanted: a
 * decompressor should stop (throw) past it rather than inflate everything.
 */
export type Decompressor = (body: Buffer, maxOutputLength?: number) => Buffer;

/** A compressed body with the value for the `compression` header. */
export interface CompressedBody {
  /** The compressed bytes. */
  body: Buffer;
  /** The MIME type to put in the message header `compression`. */
  contentType: string;
}

/** Options of {@link decompress}. */
export interface DecompressOptions {
  /**
   * Largest decompressed size in bytes; a larger output raises a {@link DecodeError} with
   * code `BODY_TOO_LARGE` without ever being inflated fully. `undefined` means no limit.
   * @default undefined
   */
  maxBytes?: number | undefined;
}

interface Method {
  readonly mime: string;
  readonly compress: Compressor;
  readonly decompress: Decompressor;
}

const methods = new Map<string, Method>();
/** Name or alias → MIME type. */
const aliases = new Map<string, string>();

/**
 * Registers (or replaces) a compression method, like kombu's `compression.register`.
 *
 * @param name - The method's main name, usable in {@link compress}.
 * @param mime - The MIME type sent in the `compression` header.
 * @param aliases - Further names for the method. @default []
 * @throws {@link ArgumentError} for an empty name or a MIME type without `/`.
 * @example
 * ```ts
 * registerCompression('identity', 'application/x-identity', (b) => b, (b) => b, ['none']);
 * ```
 */
export function registerCompression(
  name: string,
  mime: string,
  compressFn: Compressor,
  decompressFn: Decompressor,
  aliasNames: readonly string[] = [],
): void {
  if (typeof name !== 'string' || name.length === 0) throw new ArgumentError('compression name is empty');
  if (typeof mime !== 'string' || !mime.includes('/')) {
    throw new ArgumentError(`invalid compression MIME type ${JSON.stringify(mime)}`);
  }
  if (typeof compressFn !== 'function' || typeof decompressFn !== 'function') {
    throw new ArgumentError(`compression ${name} needs compress and decompress functions`);
  }
  methods.set(mime, Object.freeze({ mime, compress: compressFn, decompress: decompressFn }));
  for (const alias of [name, ...aliasNames]) aliases.set(alias, mime);
}

/**
 * Removes a compression method by name, alias or MIME type, with all its aliases.
 * Unknown values are ignored.
 *
 * @example
 * ```ts
 * unregisterCompression('brotli');
 * ```
 */
export function unregisterCompression(nameOrMime: string): void {
  const mime = aliases.get(nameOrMime) ?? nameOrMime;
  if (!methods.delete(mime)) return;
  for (const [alias, target] of aliases) if (target === mime) aliases.delete(alias);
}

/**
 * The MIME type for a method name, alias or MIME type, or undefined when unknown.
 *
 * @example
 * ```ts
 * compressionMimeFor('zlib'); // 'application/x-gzip'
 * ```
 */
export function compressionMimeFor(nameOrMime: string): string | undefined {
  const mime = aliases.get(nameOrMime) ?? nameOrMime;
  return methods.has(mime) ? mime : undefined;
}

/**
 * Compresses a body with a method given by name, alias or MIME type.
 *
 * @throws {@link ArgumentError} for an unknown method; {@link EncodeError} when the
 * compressor fails.
 * @example
 * ```ts
 * const { body, contentType } = compress(Buffer.from('{}'), 'zlib');
 * // headers: { compression: contentType } → 'application/x-gzip'
 * ```
 */
export function compress(body: Buffer, method: string): CompressedBody {
  const mime = compressionMimeFor(method);
  const entry = mime === undefined ? undefined : methods.get(mime);
  if (entry === undefined) throw new ArgumentError(`unknown compression method ${JSON.stringify(method)}`);
  try {
    return { body: entry.compress(body), contentType: entry.mime };
  } catch (err) {
    throw new EncodeError(`cannot compress with ${entry.mime}: ${errorText(err)}`, { cause: err });
  }
}

/**
 * Decompresses a body given the `compression` header value (a MIME type, or a method name
 * such as `zlib`, which some peers send).
 *
 * @throws {@link DecodeError} for an unknown method, corrupt bytes (the codec's error is the
 * `cause`), or, with code `BODY_TOO_LARGE`, output over `maxBytes`.
 * @example
 * ```ts
 * decompress(compressed, 'application/x-gzip', { maxBytes: 16 * 1024 * 1024 });
 * ```
 */
export function decompress(body: Buffer, mime: string, options: DecompressOptions = {}): Buffer {
  const { maxBytes } = options;
  if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 0)) {
    throw new ArgumentError(`maxBytes must be a non-negative integer, got ${String(maxBytes)}`);
  }
  const resolved = compressionMimeFor(mime);
  const entry = resolved === undefined ? undefined : methods.get(resolved);
  if (entry === undefined) throw new DecodeError(`unsupported compression ${JSON.stringify(mime)}`);
  let out: Buffer;
  try {
    // zlib's maxOutputLength must be at least 1; a limit of 0 is checked below instead.
    out = maxBytes === undefined ? entry.decompress(body) : entry.decompress(body, Math.max(1, maxBytes));
  } catch (err) {
    if (isTooLarge(err)) throw tooLarge(entry.mime, maxBytes, err);
    throw new DecodeError(`cannot decompress ${entry.mime} body: ${errorText(err)}`, { cause: err });
  }
  // Custom decompressors may ignore the limit: check the result too.
  if (maxBytes !== undefined && out.length > maxBytes) throw tooLarge(entry.mime, maxBytes, undefined);
  return out;
}

function isTooLarge(err: unknown): boolean {
  return err instanceof DecodeError
    ? err.code === 'BODY_TOO_LARGE'
    : (err as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
}

function tooLarge(mime: string, maxBytes: number | undefined, cause: unknown): DecodeError {
  return new DecodeError(`decompressed ${mime} body exceeds the limit of ${String(maxBytes)} bytes`, {
    code: 'BODY_TOO_LARGE',
    ...(cause === undefined ? {} : { cause }),
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function limit(maxOutputLength: number | undefined): { maxOutputLength?: number } {
  return maxOutputLength === undefined ? {} : { maxOutputLength };
}

// kombu sends zlib.compress() output (RFC 1950) under application/x-gzip; unzipSync reads
// that and also real gzip (RFC 1952), which some non-Python peers send under the same name.
registerCompression(
  'zlib',
  'application/x-gzip',
  (body) => deflateSync(body),
  (body, max) => unzipSync(body, limit(max)),
  ['gzip'],
);
registerCompression(
  'brotli',
  'application/x-brotli',
  (body) => brotliCompressSync(body),
  (body, max) => brotliDecompressSync(body, limit(max)),
);
