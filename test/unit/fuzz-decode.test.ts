/**
 * Fuzz of the whole decode path: Message.payload over arbitrary bytes, content types,
 * encodings, compression headers (every kombu codec), accept lists (pickle included) and
 * decode limits never throws anything but our typed errors.
 */
import fc from 'fast-check';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ContentDisallowedError, DecodeError } from '../../src/errors.js';
import { compress, prepareCompression } from '../../src/kombu/compression.js';
import type { DecodeLimits } from '../../src/kombu/decode-limits.js';
import { Message } from '../../src/kombu/message.js';
import { prepareAcceptContent } from '../../src/kombu/serialization.js';

// zstd's encoder is WebAssembly, started once before the first direct compress().
await prepareCompression('zstd');

const CONTENT_TYPES = [
  'application/json',
  'application/x-msgpack',
  'application/x-yaml',
  'application/x-python-serialize',
  'application/data',
  'text/plain',
  'application/x-unknown',
  '',
];
const ENCODINGS = ['utf-8', 'binary', 'latin1', 'utf-16le', 'no-such-codec', ''];
const COMPRESSION = [
  undefined,
  'application/x-gzip',
  'zlib',
  'application/x-brotli',
  'application/x-bz2',
  'bzip2',
  'application/x-lzma',
  'xz',
  'application/zstd',
  'zstandard',
  'application/x-snappy',
  '',
];

/** JSON and random payloads compressed once with each codec (compressing per run is slow). */
const POOL = fc
  .sample(
    fc.tuple(
      fc.oneof(
        fc.json(),
        fc.uint8Array({ maxLength: 128 }).map((b) => Buffer.from(b).toString('latin1')),
      ),
    ),
    {
      numRuns: 40,
      seed: 12,
    },
  )
  .flatMap(([text]) =>
    ['zlib', 'bzip2', 'brotli', 'lzma', 'zstd'].map(
      (method) => compress(Buffer.from(text, 'latin1'), method).body,
    ),
  );

/** A pooled compressed body, maybe damaged. */
const compressed = fc
  .tuple(fc.constantFrom(...POOL), fc.option(fc.tuple(fc.nat(), fc.nat(255)), { nil: undefined }))
  .map(([sample, edit]) => {
    const body = Buffer.from(sample);
    if (edit !== undefined) body[edit[0] % body.length] = edit[1];
    return new Uint8Array(body);
  });

const bodies = fc.oneof(
  fc.uint8Array({ maxLength: 512 }),
  fc.json().map((j) => new TextEncoder().encode(j)),
  fc.uint8Array({ maxLength: 256 }).map((b) => new Uint8Array(deflateSync(b))),
  compressed,
);

const limits: fc.Arbitrary<Partial<DecodeLimits> | undefined> = fc.option(
  fc.record(
    {
      maxBodyBytes: fc.nat(600),
      maxDecodedBytes: fc.nat(600),
      maxDepth: fc.nat(8),
      maxCollections: fc.nat(20),
      maxAliasExpansion: fc.nat(4),
      maxPickleMemo: fc.nat(4),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);

describe('fuzz: Message.payload decode path', () => {
  it('throws only DecodeError / ContentDisallowedError over 10,000 arbitrary messages', () => {
    fc.assert(
      fc.property(
        bodies,
        fc.constantFrom(...CONTENT_TYPES),
        fc.constantFrom(...ENCODINGS),
        fc.constantFrom(...COMPRESSION),
        fc.option(fc.constantFrom(['json'], ['json', 'msgpack', 'yaml'], ['pickle', 'json']), {
          nil: undefined,
        }),
        fc.option(fc.nat({ max: 1024 }), { nil: undefined }),
        limits,
        (body, contentType, contentEncoding, compression, accept, maxBytes, decodeLimits) => {
          const m = new Message(
            {
              body: Buffer.from(body),
              properties: {
                contentType,
                contentEncoding,
                headers: compression === undefined ? {} : { compression },
              },
              fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
            },
            null,
            {
              ...(accept === undefined ? {} : { accept: prepareAcceptContent(accept) }),
              ...(maxBytes === undefined ? {} : { maxBytes }),
              limits: decodeLimits,
            },
          );
          try {
            void m.payload;
          } catch (err) {
            if (!(err instanceof DecodeError || err instanceof ContentDisallowedError)) throw err;
          }
        },
      ),
      { numRuns: 10_000 },
    );
  });

  it('a 50 MB body is refused by the decoded-size limit, compressed or not', () => {
    const big = Buffer.alloc(50 * 1024 * 1024, 0x61);
    const make = (body: Buffer, headers: Record<string, unknown>): Message =>
      new Message(
        {
          body,
          properties: { contentType: 'text/plain', contentEncoding: 'utf-8', headers },
          fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
        },
        null,
        { maxBytes: 16 * 1024 * 1024 },
      );
    expect(() => make(big, {}).payload).toThrow(expect.objectContaining({ code: 'BODY_TOO_LARGE' }));
    // A zip bomb: 50 MB of 'a' deflates to ~50 KB; inflation stops at the limit.
    const bomb = deflateSync(big);
    expect(() => make(bomb, { compression: 'application/x-gzip' }).payload).toThrow(
      expect.objectContaining({ code: 'BODY_TOO_LARGE' }),
    );
    // Without a limit the same body decodes.
    const open = new Message({
      body: big,
      properties: { contentType: 'text/plain', contentEncoding: 'utf-8' },
      fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
    });
    expect((open.payload as string).length).toBe(big.length);
  });
});
