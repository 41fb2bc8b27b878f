/**
 * Message body compression, wire-compatible with kombu's `kombu.compression`: a registry
 * of methods keyed by MIME type with name aliases. The MIME type travels in the message
 * header `compression`.
 *
 * Built-ins, with kombu 5's names and aliases: `zlib`/`gzip` (`application/x-gzip`; both
 * produce **zlib RFC 1950** bytes, exactly as kombu does despite the name), `bzip2`/`bzip`
 * (`application/x-bz2`), `brotli` (`application/x-brotli`), `lzma`/`xz`
 * (`application/x-lzma`, an .xz container as Python's `lzma.compress` writes) and
 * `zstd`/`zstandard` (`application/zstd`, frames with their content size, as
 * python-zstandard writes). Others can be added with {@link registerCompression}.
 *
 * Decompression is bounded: a body over `maxBodyBytes` is refused, and every built-in codec
 * stops as soon as its output passes `maxDecodedBytes` ({@link DecodeLimits}), so a
 * decompression bomb is never inflated in full.
 *
 * @module
 */
import { brotliCompressSync, brotliDecompressSync, deflateSync, unzipSync } from 'node:zlib';
import { ArgumentError, DecodeError, DecodeLimitError, EncodeError } from '../errors.js';
import {
  bzip2Compress,
  bzip2Decompress,
  xzCompress,
  prepareZstd,
  xzDecompress,
  zstdCompress,
  zstdDecompress,
  zstdReady,
} from './compression-codecs.js';
import type { DecodeOptions } from './decode-limits.js';
import { decodeContext, limitError } from './decode-limits.js';
import type { LoadsOptions } from './serialization.js';
import { loads } from './serialization.js';

/** Compresses a body. */
export type Compressor = (body: Buffer) => Buffer;

/**
 * Decompresses a body. `maxOutputLength`, when given, is the largest output wanted: a
 * decompressor should stop (throw a RangeError with code `ERR_BUFFER_TOO_LARGE`, as
 * node:zlib does, or a `BODY_TOO_LARGE` DecodeError) past it rather than inflate everything.
 */
export type Decompressor = (body: Buffer, maxOutputLength?: number) => Buffer;

/** A compressed body with the value for the `compression` header. */
export interface CompressedBody {
  /** The compressed bytes. */
  body: Buffer;
  /** The MIME type to put in the message header `compression`. */
  contentType: string;
}

/**
 * Options of {@link registerCompression}.
 *
 * @example
 * ```ts
 * const options: CompressionOptions = { prepare: () => wasm.init(), ready: () => wasm.started };
 * ```
 */
export interface CompressionOptions {
  /**
   * Starts the compressor (e.g. compiles WebAssembly); the library awaits it before the
   * first compression with the method. @default undefined (nothing to start)
   */
  prepare?: (() => Promise<void>) | undefined;
  /** True once `prepare` has finished. @default undefined (always ready) */
  ready?: (() => boolean) | undefined;
}

interface Method extends CompressionOptions {
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
 * @param options - How to start a compressor that needs it (see {@link prepareCompression}). @default {}
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
  options: CompressionOptions = {},
): void {
  if (typeof name !== 'string' || name.length === 0) throw new ArgumentError('compression name is empty');
  if (typeof mime !== 'string' || !mime.includes('/')) {
    throw new ArgumentError(`invalid compression MIME type ${JSON.stringify(mime)}`);
  }
  if (typeof compressFn !== 'function' || typeof decompressFn !== 'function') {
    throw new ArgumentError(`compression ${name} needs compress and decompress functions`);
  }
  methods.set(
    mime,
    Object.freeze({
      mime,
      compress: compressFn,
      decompress: decompressFn,
      prepare: options.prepare,
      ready: options.ready,
    }),
  );
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

function methodFor(method: string): Method {
  const mime = compressionMimeFor(method);
  const entry = mime === undefined ? undefined : methods.get(mime);
  if (entry === undefined) throw new ArgumentError(`unknown compression method ${JSON.stringify(method)}`);
  return entry;
}

/**
 * True when {@link compress} can use the method now: it needs no start, or it has started.
 *
 * @throws {@link ArgumentError} for an unknown method.
 * @example
 * ```ts
 * if (!compressionReady('zstd')) await prepareCompression('zstd');
 * ```
 */
export function compressionReady(method: string): boolean {
  return methodFor(method).ready?.() ?? true;
}

/**
 * Starts a method's compressor when it needs starting (zstd compiles its WebAssembly
 * encoder); resolves at once for the others. Producers call it before their first
 * compression; call it yourself before using {@link compress} directly with zstd.
 *
 * @throws {@link ArgumentError} for an unknown method (synchronously).
 * @example
 * ```ts
 * await prepareCompression('zstd');
 * compress(Buffer.from('{}'), 'zstd');
 * ```
 */
export function prepareCompression(method: string): Promise<void> {
  const entry = methodFor(method);
  if (entry.prepare === undefined || entry.ready?.() === true) return Promise.resolve();
  return entry.prepare().catch((err: unknown) => {
    throw new EncodeError(`cannot start the ${entry.mime} compressor: ${errorText(err)}`, { cause: err });
  });
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
  const entry = methodFor(method);
  try {
    return { body: entry.compress(body), contentType: entry.mime };
  } catch (err) {
    throw new EncodeError(`cannot compress with ${entry.mime}: ${errorText(err)}`, { cause: err });
  }
}

/**
 * Decompresses a body given the `compression` header value (a MIME type, or a method name
 * such as `zlib`, which some peers send), within the {@link DecodeLimits}.
 *
 * @throws {@link DecodeError} for an unknown method or corrupt bytes (the codec's error is
 * the `cause`); {@link DecodeLimitError} with code `BODY_TOO_LARGE` for input over
 * `maxBodyBytes` or output over `maxDecodedBytes` (or `maxBytes`).
 * @example
 * ```ts
 * decompress(compressed, 'application/x-gzip', { maxBytes: 16 * 1024 * 1024, label: `task ${id}` });
 * ```
 */
export function decompress(body: Buffer, mime: string, options: DecodeOptions = {}): Buffer {
  const ctx = decodeContext(options.limits, options.maxBytes, options.label);
  const { maxBodyBytes, maxDecodedBytes } = ctx.limits;
  const resolved = compressionMimeFor(mime);
  const entry = resolved === undefined ? undefined : methods.get(resolved);
  if (entry === undefined) throw new DecodeError(`unsupported compression ${JSON.stringify(mime)}`);
  if (body.length > maxBodyBytes) {
    throw limitError(
      ctx,
      'BODY_TOO_LARGE',
      'maxBodyBytes',
      `${entry.mime} body of ${body.length} bytes is too large`,
    );
  }
  const tooLarge = (cause?: unknown): DecodeLimitError =>
    limitError(
      ctx,
      'BODY_TOO_LARGE',
      'maxDecodedBytes',
      `decompressed ${entry.mime} body is too large`,
      cause,
    );
  let out: Buffer;
  try {
    // zlib's maxOutputLength must be at least 1; a limit of 0 is checked below instead.
    out = Number.isFinite(maxDecodedBytes)
      ? entry.decompress(body, Math.max(1, maxDecodedBytes))
      : entry.decompress(body);
  } catch (err) {
    if (isTooLarge(err)) throw tooLarge(err);
    if (err instanceof DecodeLimitError) throw err;
    throw new DecodeError(`cannot decompress ${entry.mime} body: ${errorText(err)}`, { cause: err });
  }
  // Custom decompressors may ignore the limit: check the result too.
  if (out.length > maxDecodedBytes) throw tooLarge();
  return out;
}

/** What {@link decodeBody} needs besides the bytes. */
export interface DecodeBodyOptions extends LoadsOptions {
  /** The message's `content_type` property. @default undefined (`application/data`) */
  contentType?: string | undefined;
  /** The message's `content_encoding` property. @default undefined */
  contentEncoding?: string | undefined;
  /** The `compression` header (MIME type or method name). @default undefined (none) */
  compression?: string | undefined;
}

/**
 * Decodes a received body as kombu's `Message.decode` does: checks its size against
 * `maxBodyBytes`, decompresses it per the `compression` header (bounded by
 * `maxDecodedBytes`), then deserializes it with {@link loads}, every {@link DecodeLimits}
 * applying (defaults when none are given).
 *
 * @throws what {@link decompress} and {@link loads} throw.
 * @example
 * ```ts
 * decodeBody(body, { contentType: 'application/json', contentEncoding: 'utf-8', label: `task ${id}` });
 * ```
 */
export function decodeBody(body: Buffer, options: DecodeBodyOptions = {}): unknown {
  const { contentType, contentEncoding, compression, ...loadsOptions } = options;
  const ctx = decodeContext(options.limits, undefined, options.label);
  if (body.length > ctx.limits.maxBodyBytes) {
    throw limitError(
      ctx,
      'BODY_TOO_LARGE',
      'maxBodyBytes',
      `message body of ${body.length} bytes is too large`,
    );
  }
  const plain =
    compression === undefined || compression === ''
      ? body
      : decompress(body, compression, {
          maxBytes: options.maxBytes,
          limits: ctx.limits,
          label: options.label,
        });
  return loads(plain, contentType, contentEncoding, Object.assign({}, loadsOptions, { limits: ctx.limits }));
}

function isTooLarge(err: unknown): boolean {
  if (err instanceof DecodeError) return err.code === 'BODY_TOO_LARGE' && !(err instanceof DecodeLimitError);
  return err instanceof RangeError && 'code' in err && err.code === 'ERR_BUFFER_TOO_LARGE';
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
registerCompression('bzip2', 'application/x-bz2', bzip2Compress, bzip2Decompress, ['bzip']);
registerCompression(
  'brotli',
  'application/x-brotli',
  (body) => brotliCompressSync(body),
  (body, max) => brotliDecompressSync(body, limit(max)),
);
registerCompression('lzma', 'application/x-lzma', xzCompress, xzDecompress, ['xz']);
registerCompression('zstd', 'application/zstd', zstdCompress, zstdDecompress, ['zstandard'], {
  prepare: prepareZstd,
  ready: zstdReady,
});
