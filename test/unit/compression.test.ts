import { deflateSync, gzipSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, DecodeError, EncodeError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Producer } from '../../src/kombu/producer.js';
import { Queue } from '../../src/kombu/queue.js';
import {
  compress,
  compressionMimeFor,
  compressionReady,
  decompress,
  prepareCompression,
  registerCompression,
  unregisterCompression,
} from '../../src/kombu/compression.js';
import { dumps, loads } from '../../src/kombu/serialization.js';

describe('compression', () => {
  // First in the file: the zstd encoder starts lazily (no top-level await, so the package can
  // be require()d), and a producer starts it by itself.
  it('zstd starts on first use: a producer awaits the start, a direct compress() before it is a typed error', async () => {
    expect(compressionReady('zstd')).toBe(false);
    expect(() => compress(Buffer.from('{}'), 'zstd')).toThrow(EncodeError);
    expect(() => compress(Buffer.from('{}'), 'zstd')).toThrow(/prepareCompression\('zstd'\)/);
    const connection = new Connection('memory://');
    try {
      const channel = await connection.channel();
      const queue = new Queue(`zstd-start-${Date.now()}`).bind(channel);
      await queue.declare();
      await new Producer(channel, { compression: 'zstd' }).publish({ n: 1 }, { routingKey: queue.name });
      const message = await queue.get({ noAck: true });
      expect(message?.headers['compression']).toBe('application/zstd');
      expect(message?.payload).toEqual({ n: 1 });
      expect(compressionReady('zstd')).toBe(true);
    } finally {
      await connection.close();
    }
    await prepareCompression('zstd'); // already started: resolves at once
    expect(decompress(compress(Buffer.from('abc'), 'zstd').body, 'application/zstd').toString()).toBe('abc');
  });

  it('maps names to kombu mime types', () => {
    expect(compressionMimeFor('zlib')).toBe('application/x-gzip');
    expect(compressionMimeFor('gzip')).toBe('application/x-gzip');
    expect(compressionMimeFor('application/x-gzip')).toBe('application/x-gzip');
    expect(compressionMimeFor('brotli')).toBe('application/x-brotli');
    // kombu 5's names and aliases (kombu/compression.py).
    for (const name of ['bzip2', 'bzip', 'application/x-bz2'])
      expect(compressionMimeFor(name)).toBe('application/x-bz2');
    for (const name of ['lzma', 'xz', 'application/x-lzma'])
      expect(compressionMimeFor(name)).toBe('application/x-lzma');
    for (const name of ['zstd', 'zstandard', 'application/zstd'])
      expect(compressionMimeFor(name)).toBe('application/zstd');
    expect(compressionMimeFor('snappy')).toBeUndefined();
  });

  it('zlib and gzip both send RFC 1950 zlib bytes under application/x-gzip', () => {
    for (const method of ['zlib', 'gzip', 'application/x-gzip']) {
      const { body, contentType } = compress(Buffer.from('hello'), method);
      expect(contentType).toBe('application/x-gzip');
      // CMF byte 0x78 = deflate, 32K window: Python's zlib.compress output starts the same way.
      expect(body[0]).toBe(0x78);
      expect(inflateSync(body).toString()).toBe('hello');
    }
  });

  it('reads what Python zlib.compress wrote, and real gzip too', () => {
    // Python: zlib.compress(b'{"status": "SUCCESS"}')
    const py = Buffer.from('eJyrViouSSwpLVayUlAKDnV2dg0OVqoFAEzaBpg=', 'base64');
    expect(decompress(py, 'application/x-gzip').toString()).toBe('{"status": "SUCCESS"}');
    expect(decompress(gzipSync(Buffer.from('g')), 'application/x-gzip').toString()).toBe('g');
  });

  it('accepts the raw name as header value', () => {
    const body = deflateSync(Buffer.from('x'));
    expect(decompress(body, 'zlib').toString()).toBe('x');
    expect(decompress(body, 'gzip').toString()).toBe('x');
  });

  for (const method of ['zlib', 'brotli']) {
    it(`round-trips ${method}`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2000 }), (u) => {
          const { body, contentType } = compress(Buffer.from(u), method);
          expect(decompress(body, contentType)).toEqual(Buffer.from(u));
        }),
        { numRuns: 200 },
      );
    });
  }

  it('round-trips compression over serialization', () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.constantFrom('json', 'msgpack', 'yaml'),
        fc.constantFrom('zlib', 'gzip', 'brotli'),
        (value, serializer, method) => {
          const normal = JSON.parse(JSON.stringify(value)) as unknown;
          // msgpack refuses a `__proto__` map key on purpose (prototype-pollution guard,
          // asserted in serialization.test.ts); JSON and YAML keep it as an own property.
          fc.pre(!(serializer === 'msgpack' && JSON.stringify(normal).includes('"__proto__"')));
          const enc = dumps(normal, serializer);
          const { body, contentType } = compress(enc.body, method);
          const plain = decompress(body, contentType, { maxBytes: enc.body.length });
          expect(loads(plain, enc.contentType, enc.contentEncoding, { accept: [serializer] })).toEqual(
            normal,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('stops a zip bomb at maxBytes without inflating it', () => {
    const bomb = deflateSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100_000);
    const before = process.memoryUsage().arrayBuffers;
    try {
      decompress(bomb, 'application/x-gzip', { maxBytes: 1024 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).code).toBe('BODY_TOO_LARGE');
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
    const brotliBomb = compress(Buffer.alloc(1024 * 1024), 'brotli').body;
    expect(() => decompress(brotliBomb, 'application/x-brotli', { maxBytes: 10 })).toThrow(
      expect.objectContaining({ code: 'BODY_TOO_LARGE' }),
    );
  });

  it('allows output exactly at maxBytes, and maxBytes 0 for empty output', () => {
    const body = compress(Buffer.from('12345'), 'zlib').body;
    expect(decompress(body, 'zlib', { maxBytes: 5 }).toString()).toBe('12345');
    expect(() => decompress(body, 'zlib', { maxBytes: 4 })).toThrow(
      expect.objectContaining({ code: 'BODY_TOO_LARGE' }),
    );
    expect(() => decompress(body, 'zlib', { maxBytes: 0 })).toThrow(
      expect.objectContaining({ code: 'BODY_TOO_LARGE' }),
    );
    expect(decompress(compress(Buffer.alloc(0), 'zlib').body, 'zlib', { maxBytes: 0 })).toEqual(
      Buffer.alloc(0),
    );
    expect(() => decompress(body, 'zlib', { maxBytes: -1 })).toThrow(ArgumentError);
  });

  it('names an unknown mime type', () => {
    expect(() => decompress(Buffer.from('x'), 'application/x-snappy')).toThrow(/application\/x-snappy/);
    expect(() => decompress(Buffer.from('x'), 'application/x-snappy')).toThrow(DecodeError);
    expect(() => compress(Buffer.from('x'), 'snappy')).toThrow(ArgumentError);
  });

  it('throws DecodeError with the cause on corrupt bytes', () => {
    try {
      decompress(Buffer.from([1, 2, 3]), 'application/x-gzip');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as Error).cause).toBeInstanceOf(Error);
    }
  });

  it('throws only DecodeError on arbitrary input', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 128 }),
        fc.constantFrom('application/x-gzip', 'application/x-brotli', 'zlib', 'gzip', 'brotli', 'x/y', ''),
        fc.option(fc.nat(64), { nil: undefined }),
        (u, mime, maxBytes) => {
          try {
            const out = decompress(Buffer.from(u), mime, { maxBytes });
            if (maxBytes !== undefined) expect(out.length).toBeLessThanOrEqual(maxBytes);
          } catch (err) {
            expect(err).toBeInstanceOf(DecodeError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('registers and unregisters a custom method, enforcing the limit on it', () => {
    registerCompression(
      'twice',
      'application/x-twice',
      (b) => Buffer.concat([b, b]),
      (b) => b.subarray(0, b.length / 2),
      ['2x'],
    );
    try {
      const { body, contentType } = compress(Buffer.from('ab'), '2x');
      expect(contentType).toBe('application/x-twice');
      expect(decompress(body, 'twice').toString()).toBe('ab');
      expect(() => decompress(body, contentType, { maxBytes: 1 })).toThrow(
        expect.objectContaining({ code: 'BODY_TOO_LARGE' }),
      );
    } finally {
      unregisterCompression('twice');
    }
    expect(compressionMimeFor('2x')).toBeUndefined();
    expect(() =>
      registerCompression(
        'bad',
        'nomime',
        (b) => b,
        (b) => b,
      ),
    ).toThrow(ArgumentError);
  });
});
