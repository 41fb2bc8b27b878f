/**
 * The bzip2, xz and zstd codecs behind compression.ts, each decoding with a bounded output:
 * it stops as soon as the output passes `maxOutputLength`, throwing a `BODY_TOO_LARGE`
 * DecodeError, so a bomb is never inflated in full.
 *
 * Packages (figures in bench/README.md, "Codecs"):
 * - bzip2: seek-bzip decodes (pure JS, byte-by-byte output we can stop); bzip2-encoder.ts
 *   encodes (no well-kept npm encoder fits, see there).
 * - xz: lzma-native (liblzma, the library Python's lzma module wraps; prebuilt N-API
 *   binaries ship in the npm package), driven synchronously in 1 KiB input steps.
 * - zstd: fzstd decodes (pure JS); @bokuweb/zstd-wasm encodes (libzstd in WebAssembly,
 *   started on first use by {@link prepareZstd}: a top-level await would make the package
 *   impossible to `require()`).
 *
 * @module
 */
import { compress as zstdWasmCompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import { Decompress as ZstdStream, decompress as fzstdDecompress } from 'fzstd';
import lzma from 'lzma-native';
import Bunzip from 'seek-bzip';
import { DecodeError, EncodeError } from '../errors.js';
import { bzip2Encode } from './bzip2-encoder.js';

function tooLarge(kind: string, max: number): DecodeError {
  return new DecodeError(`${kind} output exceeds ${max} bytes`, { code: 'BODY_TOO_LARGE' });
}

/** Collects output chunks and stops past a limit. */
class BoundedSink {
  readonly chunks: Uint8Array[] = [];
  total = 0;

  constructor(
    readonly kind: string,
    readonly max: number,
  ) {}

  push(chunk: Uint8Array): void {
    this.total += chunk.length;
    if (this.total > this.max) throw tooLarge(this.kind, this.max);
    this.chunks.push(chunk);
  }

  result(): Buffer {
    return Buffer.concat(this.chunks, this.total);
  }
}

// ---------------------------------------------------------------------------------------
// bzip2 (kombu: bz2.compress / bz2.decompress, application/x-bz2)

/** bzip2 compression at level 9, as Python's `bz2.compress` default. */
export function bzip2Compress(body: Buffer): Buffer {
  return bzip2Encode(body);
}

/** bzip2 decompression (several concatenated streams too, as `bz2.decompress` reads). */
export function bzip2Decompress(body: Buffer, max = Number.MAX_SAFE_INTEGER): Buffer {
  let out = Buffer.allocUnsafe(Math.min(max, Math.max(1024, body.length * 4)));
  let len = 0;
  let pos = 0;
  Bunzip.decode(
    {
      readByte: () => {
        if (pos >= body.length) throw new DecodeError('bzip2 data was truncated');
        return body[pos++] ?? 0;
      },
      read: (into: Uint8Array, offset: number, length: number) => {
        const n = Math.min(length, body.length - pos);
        if (n <= 0) return -1;
        into.set(body.subarray(pos, pos + n), offset);
        pos += n;
        return n;
      },
      seek: (p: number) => {
        pos = p;
      },
      eof: () => pos >= body.length,
    },
    {
      writeByte: (byte: number) => {
        if (len === out.length) {
          if (len >= max) throw tooLarge('bzip2', max);
          const bigger = Buffer.allocUnsafe(Math.min(max, out.length * 2));
          out.copy(bigger, 0, 0, len);
          out = bigger;
        }
        out[len++] = byte;
      },
    },
    true,
  );
  return Buffer.from(out.subarray(0, len));
}

// ---------------------------------------------------------------------------------------
// xz (kombu: lzma.compress / lzma.decompress, application/x-lzma)

/** Input per native call: bounds how far past the limit one call can inflate. */
const XZ_STEP = 1024;
/** liblzma's memory limit for decoding (the dictionary a header may ask for). */
const XZ_MEMLIMIT = 256 * 1024 * 1024;

/** Runs a liblzma coder over `input` synchronously, collecting output in `sink`. */
function runLzma(
  stream: InstanceType<typeof lzma.Stream>,
  input: Buffer,
  sink: BoundedSink,
  kind: string,
  step: number,
): Buffer {
  let failure: Error | null = null;
  let ended = false;
  stream.bufferHandler = (buf, processed, err) => {
    if (err !== null && err !== undefined) failure = err;
    else if (buf === null) {
      if (processed === null || processed === undefined) ended = true;
    } else if (buf !== undefined && buf.length > 0 && failure === null) {
      try {
        sink.push(buf);
      } catch (tooBig) {
        failure = tooBig instanceof Error ? tooBig : new Error(String(tooBig));
      }
    }
  };
  const check = (): void => {
    if (failure !== null) throw failure;
  };
  try {
    for (let i = 0; i < input.length && !ended; i += step) {
      stream.code(input.subarray(i, i + step), false);
      check();
    }
    if (!ended) stream.code(null, false);
    check();
  } finally {
    stream.resetUnderlying();
  }
  if (!ended && kind === 'xz') throw new DecodeError('xz data was truncated');
  return sink.result();
}

/** .xz compression, preset 6 with a CRC64 check: Python's `lzma.compress` defaults. */
export function xzCompress(body: Buffer): Buffer {
  const stream = new lzma.Stream();
  stream.easyEncoder({ preset: 6, check: lzma.CHECK_CRC64 });
  return runLzma(
    stream,
    body,
    new BoundedSink('xz encoder', Number.MAX_SAFE_INTEGER),
    'xz encoder',
    Math.max(1, body.length),
  );
}

/** .xz (or legacy .lzma) decompression, as Python's `lzma.decompress` (FORMAT_AUTO). */
export function xzDecompress(body: Buffer, max = Number.MAX_SAFE_INTEGER): Buffer {
  const stream = new lzma.Stream();
  stream.autoDecoder({ memlimit: XZ_MEMLIMIT });
  return runLzma(stream, body, new BoundedSink('xz', max), 'xz', XZ_STEP);
}

// ---------------------------------------------------------------------------------------
// zstd (kombu: zstandard.ZstdCompressor().compress / ZstdDecompressor().decompress)

/** python-zstandard's default level. */
const ZSTD_LEVEL = 3;
/** Largest window accepted for a frame that does not declare its size (zstd level 19's). */
const ZSTD_WINDOW_MAX = 8 * 1024 * 1024;

let zstdStarting: Promise<void> | undefined;
let zstdStarted = false;

/**
 * Starts the zstd encoder (compiles its WebAssembly) once; later calls return the same
 * promise. A failed start is forgotten, so the next call tries again.
 */
export function prepareZstd(): Promise<void> {
  if (zstdStarting === undefined) {
    const starting = zstdInit().then(() => {
      zstdStarted = true;
    });
    zstdStarting = starting;
    starting.catch(() => {
      if (zstdStarting === starting) zstdStarting = undefined;
    });
  }
  return zstdStarting;
}

/** True once {@link prepareZstd} has finished: {@link zstdCompress} works from then on. */
export function zstdReady(): boolean {
  return zstdStarted;
}

/**
 * zstd compression at level 3, the frame carrying its content size (as kombu's peers need).
 *
 * @throws EncodeError before {@link prepareZstd} has finished.
 */
export function zstdCompress(body: Buffer): Buffer {
  if (!zstdStarted) {
    throw new EncodeError("the zstd encoder is not started: await prepareCompression('zstd') first");
  }
  const out = zstdWasmCompress(body, ZSTD_LEVEL);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

interface ZstdFrame {
  /** Offset just past the frame. */
  end: number;
  /** Declared content size, when the frame has one. */
  contentSize: number | undefined;
  /** Window size the decoder must keep. */
  window: number;
  /** True for a skippable frame (no output). */
  skippable: boolean;
}

function need(body: Uint8Array, end: number): void {
  if (end > body.length) throw new DecodeError('zstd data was truncated');
}

function readLE(body: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + (body[at + i] ?? 0);
  return v;
}

/** Reads a frame's header and walks its block headers to find where it ends. */
function readZstdFrame(body: Uint8Array, start: number): ZstdFrame {
  need(body, start + 4);
  const magic = readLE(body, start, 4);
  if (magic >= 0x184d2a50 && magic <= 0x184d2a5f) {
    need(body, start + 8);
    const end = start + 8 + readLE(body, start + 4, 4);
    need(body, end);
    return { end, contentSize: 0, window: 0, skippable: true };
  }
  if (magic !== 0xfd2fb528) throw new DecodeError('not zstd data (bad frame magic)');
  need(body, start + 5);
  const fhd = body[start + 4] ?? 0;
  if (fhd & 0x08) throw new DecodeError('zstd frame header has a reserved bit set');
  const singleSegment = (fhd >> 5) & 1;
  const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6] ?? 0;
  const dictSize = [0, 1, 2, 4][fhd & 3] ?? 0;
  let pos = start + 5;
  let window = 0;
  if (!singleSegment) {
    need(body, pos + 1);
    const wd = body[pos++] ?? 0;
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  pos += dictSize;
  need(body, pos + fcsSize);
  let contentSize: number | undefined;
  if (fcsSize > 0) contentSize = readLE(body, pos, fcsSize) + (fcsSize === 2 ? 256 : 0);
  pos += fcsSize;
  if (singleSegment) window = contentSize ?? 0;
  for (;;) {
    need(body, pos + 3);
    const header = readLE(body, pos, 3);
    const type = (header >> 1) & 3;
    if (type === 3) throw new DecodeError('zstd block of reserved type');
    pos += 3 + (type === 1 ? 1 : header >>> 3);
    need(body, pos);
    if (header & 1) break;
  }
  if (fhd & 0x04) pos += 4; // content checksum
  need(body, pos);
  return { end: pos, contentSize, window, skippable: false };
}

/** zstd decompression of one or more frames, never past `max` bytes of output. */
export function zstdDecompress(body: Buffer, max = Number.MAX_SAFE_INTEGER): Buffer {
  const sink = new BoundedSink('zstd', max);
  let pos = 0;
  while (pos < body.length) {
    const frame = readZstdFrame(body, pos);
    const bytes = body.subarray(pos, frame.end);
    pos = frame.end;
    if (frame.skippable) continue;
    if (frame.contentSize !== undefined) {
      // The declared size is what fzstd allocates: check it before anything is built.
      if (sink.total + frame.contentSize > max) throw tooLarge('zstd', max);
      const part = fzstdDecompress(bytes);
      if (part.length !== frame.contentSize)
        throw new DecodeError('zstd frame size does not match its header');
      sink.push(part);
    } else {
      // No declared size: stream it, which keeps a window of the declared size.
      if (frame.window > ZSTD_WINDOW_MAX) {
        throw new DecodeError(`zstd frame window of ${frame.window} bytes exceeds ${ZSTD_WINDOW_MAX}`);
      }
      new ZstdStream((chunk) => sink.push(chunk)).push(bytes, true);
    }
  }
  return sink.result();
}
