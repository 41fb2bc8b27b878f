/**
 * Bounded decoding (issue 13): each limit of DecodeLimits, crossed, gives a typed
 * DecodeLimitError naming the limit (and the task), by default and with no recursion.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, DecodeLimitError } from '../../src/errors.js';
import { compress, prepareCompression, decodeBody, decompress } from '../../src/kombu/compression.js';
import { DEFAULT_DECODE_LIMITS, resolveDecodeLimits } from '../../src/kombu/decode-limits.js';
import { Message } from '../../src/kombu/message.js';
import { loads } from '../../src/kombu/serialization.js';
import { zlibBomb } from '../hostile/bodies.js';

// zstd's encoder is WebAssembly, started once before the first direct compress().
await prepareCompression('zstd');

/** The error `fn` throws (fails the test when it returns). */
function thrown(fn: () => unknown): DecodeLimitError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeLimitError);
    return err as DecodeLimitError;
  }
  throw new Error('expected a DecodeLimitError');
}

const PICKLE = 'application/x-python-serialize';
const pickle = (...parts: (string | number[] | Buffer)[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const loadPickle = (body: Buffer, limits = {}): unknown =>
  loads(body, PICKLE, 'binary', { accept: ['pickle'], limits });

function message(
  body: Buffer,
  contentType: string,
  headers: Record<string, unknown> = {},
  label?: string,
): Message {
  return new Message(
    {
      body,
      properties: { contentType, contentEncoding: 'binary', correlationId: 'c0ffee', headers },
      fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
    },
    null,
    { label },
  );
}

describe('DecodeLimits', () => {
  it('has documented defaults and validates overrides', () => {
    expect(DEFAULT_DECODE_LIMITS).toEqual({
      maxBodyBytes: 64 * 1024 * 1024,
      maxDecodedBytes: 64 * 1024 * 1024,
      maxDepth: 1000,
      maxAliasExpansion: 1_000_000,
      maxCollections: 1_000_000,
      maxPickleMemo: 1_000_000,
    });
    expect(resolveDecodeLimits({ maxDepth: 5 }).maxDepth).toBe(5);
    // Resolved limits come back as they are (checked once, frozen), as a worker passes them per message.
    const resolved = resolveDecodeLimits({ maxDepth: 7 });
    expect(resolveDecodeLimits(resolved)).toBe(resolved);
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(resolveDecodeLimits({ maxDepth: Infinity }).maxDepth).toBe(Infinity);
    expect(() => resolveDecodeLimits({ maxDepth: -1 })).toThrow(ArgumentError);
    expect(() => resolveDecodeLimits({ maxDepth: 1.5 })).toThrow(ArgumentError);
    expect(() => resolveDecodeLimits({ maxDeep: 1 } as never)).toThrow(ArgumentError);
  });

  it('refuses JSON nested 200,000 deep with TOO_DEEP, not a stack overflow', () => {
    const deep = Buffer.from(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    const err = thrown(() => loads(deep, 'application/json', 'utf-8', { label: 'task t-1' }));
    expect(err.code).toBe('TOO_DEEP');
    expect(err.limit).toBe('maxDepth');
    expect(err.max).toBe(1000);
    expect(err.message).toBe('task t-1: JSON body nested more than 1000 levels deep (limit maxDepth = 1000)');
  });

  it('lets exactly maxDepth levels through, for each serializer', () => {
    const json = (n: number): Buffer => Buffer.from(`${'['.repeat(n)}1${']'.repeat(n)}`);
    const msgpack = (n: number): Buffer => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([1])]);
    const yaml = (n: number): Buffer => Buffer.from(`${'['.repeat(n)}1${']'.repeat(n)}\n`);
    const pick = (n: number): Buffer =>
      pickle([0x80, 2], Buffer.alloc(n, 0x5d), Buffer.alloc(n - 1, 0x61), '.');
    const cases: [string, (n: number) => Buffer][] = [
      ['application/json', json],
      ['application/x-msgpack', msgpack],
      ['application/x-yaml', yaml],
      [PICKLE, pick],
    ];
    for (const [type, make] of cases) {
      const opts = { accept: [type], limits: { maxDepth: 50 } };
      expect(() => loads(make(50), type, 'binary', opts)).not.toThrow();
      expect(thrown(() => loads(make(51), type, 'binary', opts)).code).toBe('TOO_DEEP');
      // The default limit, far past it.
      expect(thrown(() => loads(make(200_000), type, 'binary', { accept: [type] })).code).toBe('TOO_DEEP');
    }
  });

  it('the JSON and msgpack pre-scans agree with the real depth (strings with quotes, brackets, escapes)', () => {
    const depthOf = (v: unknown): number =>
      v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0;
    const tricky = fc.string({ unit: fc.constantFrom('"', '\\', '[', ']', '{', '}', 'a', '\u00e9') });
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'medium' },
        tricky,
        fc.integer(),
        fc.array(tie('v'), { maxLength: 3 }),
        fc.dictionary(tricky, tie('v'), { maxKeys: 3 }),
      ),
    })).v;
    fc.assert(
      fc.property(value, fc.integer({ min: 1, max: 6 }), (v, maxDepth) => {
        const limits = { maxDepth };
        const tooDeep = depthOf(v) > maxDepth;
        for (const [body, type] of [
          [Buffer.from(`${JSON.stringify(v)}${' '.repeat(20)}`), 'application/json'],
          [Buffer.concat([Buffer.from(msgpackEncode(v)), Buffer.alloc(0)]), 'application/x-msgpack'],
        ] as const) {
          // Padding defeats the short-body shortcut for JSON; msgpack bodies are short anyway.
          if (tooDeep && body.length > 2 * maxDepth) {
            expect(thrown(() => loads(body, type, 'binary', { limits })).code).toBe('TOO_DEEP');
          } else if (!tooDeep) {
            expect(() => loads(body, type, 'binary', { limits })).not.toThrow();
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a YAML alias bomb of 12 nested anchors with TOO_MANY_ALIASES', () => {
    const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 12; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const bomb = Buffer.from(`${lines.join('\n')}\n`);
    const started = performance.now();
    const err = thrown(() => message(bomb, 'application/x-yaml', {}, 'task c0ffee').decode());
    expect(err.code).toBe('TOO_MANY_ALIASES');
    expect(err.limit).toBe('maxAliasExpansion');
    expect(err.message).toMatch(/^task c0ffee: YAML aliases expand/);
    console.log(`YAML alias bomb refused in ${(performance.now() - started).toFixed(1)} ms`);
    // A few shared references are fine, and stay shared.
    const fine = loads(Buffer.from('a: &x [1, 2]\nb: *x\nc: *x\n'), 'application/x-yaml', 'utf-8') as Record<
      string,
      unknown
    >;
    expect(fine['b']).toEqual([1, 2]);
    // An alias inside its own anchor is a cycle.
    expect(thrown(() => loads(Buffer.from('&a [*a]\n'), 'application/x-yaml', 'utf-8')).code).toBe(
      'TOO_DEEP',
    );
  });

  it('refuses bodies building too many collections (BODY_TOO_LARGE, maxCollections)', () => {
    const limits = { maxCollections: 1000 };
    const arrays = (n: number): unknown[] => Array.from({ length: n }, () => []);
    const json = Buffer.from(JSON.stringify(arrays(1000)));
    expect(thrown(() => loads(json, 'application/json', 'utf-8', { limits })).limit).toBe('maxCollections');
    const mp = Buffer.from(msgpackEncode(arrays(1000)));
    expect(thrown(() => loads(mp, 'application/x-msgpack', 'binary', { limits })).limit).toBe(
      'maxCollections',
    );
    const pk = pickle([0x80, 2], Buffer.alloc(1001, 0x5d), '.');
    expect(thrown(() => loadPickle(pk, limits)).limit).toBe('maxCollections');
    expect(
      loads(Buffer.from(JSON.stringify(arrays(998))), 'application/json', 'utf-8', { limits }),
    ).toHaveLength(998);
  });

  it('pickle: cycles, shared-reference bombs and memo growth are refused', () => {
    // l = []; l.append(l)
    expect(thrown(() => loadPickle(pickle([0x80, 2], ']q\x00h\x00a.'))).code).toBe('TOO_DEEP');
    // 30 levels, each a list of 10 references to the level below: 10^30 lists expanded.
    const parts: (string | number[])[] = [[0x80, 2], ']q\x00'];
    for (let i = 1; i <= 30; i++)
      parts.push('](', `h${String.fromCharCode(i - 1)}`.repeat(10), `eq${String.fromCharCode(i)}`);
    parts.push('.');
    const err = thrown(() => loadPickle(pickle(...parts)));
    expect(err.code).toBe('TOO_MANY_ALIASES');
    expect(err.limit).toBe('maxAliasExpansion');
    // MEMOIZE past the memo limit.
    const memo = pickle([0x80, 4], 'N', Buffer.alloc(1001, 0x94), '.');
    expect(thrown(() => loadPickle(memo, { maxPickleMemo: 1000 })).code).toBe('MEMO_TOO_LARGE');
    expect(
      loadPickle(pickle([0x80, 4], 'N', Buffer.alloc(1000, 0x94), '.'), { maxPickleMemo: 1000 }),
    ).toBeNull();
    // 200,000 nested MARKs.
    expect(thrown(() => loadPickle(pickle([0x80, 2], Buffer.alloc(200_000, 0x28)))).code).toBe('TOO_DEEP');
  });

  it('a Message decodes with the limits it was given, and the defaults without', () => {
    const body = Buffer.from('[[[1]]]');
    const make = (limits?: { maxDepth: number }): Message =>
      new Message(
        {
          body,
          properties: { contentType: 'application/json', contentEncoding: 'utf-8' },
          fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'k' },
        },
        null,
        { limits, label: 'task m-1' },
      );
    expect(make().decode()).toEqual([[[1]]]);
    expect(make({ maxDepth: 3 }).decode()).toEqual([[[1]]]);
    const err = thrown(() => make({ maxDepth: 2 }).decode());
    expect(err.message).toMatch(/^task m-1: /);
  });

  it('refuses bodies over maxDecodedBytes before parsing and over maxBodyBytes as received', () => {
    const body = Buffer.from('[1,2,3]');
    expect(
      thrown(() => loads(body, 'application/json', 'utf-8', { limits: { maxDecodedBytes: 6 } })).limit,
    ).toBe('maxDecodedBytes');
    const zipped = compress(Buffer.alloc(10_000), 'zlib');
    const err = thrown(() => decompress(zipped.body, zipped.contentType, { limits: { maxBodyBytes: 10 } }));
    expect(err.limit).toBe('maxBodyBytes');
    const plain = thrown(() =>
      decodeBody(Buffer.alloc(100), { contentType: 'application/data', limits: { maxBodyBytes: 99 } }),
    );
    expect(plain.limit).toBe('maxBodyBytes');
  });

  for (const method of ['zlib', 'bzip2', 'brotli', 'lzma', 'zstd']) {
    it(`${method}: a bomb stops at maxDecodedBytes`, () => {
      const { body, contentType } = compress(Buffer.alloc(16 * 1024 * 1024), method);
      expect(body.length).toBeLessThan(100_000);
      const err = thrown(() => decompress(body, contentType, { maxBytes: 1024 * 1024, label: 'task b-1' }));
      expect(err.code).toBe('BODY_TOO_LARGE');
      expect(err.limit).toBe('maxDecodedBytes');
      expect(err.message).toMatch(
        /^task b-1: decompressed .* too large \(limit maxDecodedBytes = 1048576\)$/,
      );
      expect(decompress(body, contentType, { maxBytes: 16 * 1024 * 1024 }).length).toBe(16 * 1024 * 1024);
    });
  }

  it('zstd: a frame declaring a huge content size is refused before anything is allocated', () => {
    // Magic, FHD 0xc0 (8-byte content size, single segment), size 2^40, one empty last raw block.
    const frame = Buffer.from('28b52ffde0' + '0000000000010000' + '010000', 'hex');
    expect(thrown(() => decompress(frame, 'application/zstd')).limit).toBe('maxDecodedBytes');
  });

  it('a 2 MB gzip bomb inflating to 1.5 GiB is refused with RSS far under 300 MB', () => {
    // 24 non-final deflate blocks of 64 MiB of zeros each, a final empty block, the zlib
    // trailer: what kombu would send with compression application/x-gzip.
    const bomb = zlibBomb(24);
    expect(bomb.length).toBeGreaterThan(1_000_000);
    expect(bomb.length).toBeLessThan(2_100_000);
    const m = message(bomb, 'application/json', { compression: 'application/x-gzip' }, 'task bomb-1');
    const started = performance.now();
    const err = thrown(() => m.decode());
    const ms = performance.now() - started;
    expect(err.code).toBe('BODY_TOO_LARGE');
    expect(err.message).toMatch(/^task bomb-1: /);
    const rss = process.memoryUsage().rss;
    console.log(
      `gzip bomb ${bomb.length} B refused in ${ms.toFixed(0)} ms, rss ${(rss / 1e6).toFixed(0)} MB`,
    );
    expect(rss).toBeLessThan(300 * 1024 * 1024);
  });
});
