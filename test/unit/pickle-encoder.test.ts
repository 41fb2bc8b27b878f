/**
 * The pickle writer: what it writes for each type (Python's opcodes at protocol 2), that
 * everything it writes reads back through the library's own reader to the same value
 * (property test), and the values it refuses. Python's `pickle.loads` reading the same
 * output is test/interop/pickle-encoder-python.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EncodeError } from '../../src/errors.js';
import { encodeLong, MAX_PICKLE_DEPTH, pickleDumps } from '../../src/kombu/pickle-encoder.js';
import { dumps, loads, PICKLE_CONTENT_TYPE } from '../../src/kombu/serialization.js';

const load = (body: Buffer): unknown =>
  loads(body, PICKLE_CONTENT_TYPE, 'binary', { accept: ['pickle'], limits: { maxDepth: 2000 } });
const hex = (v: unknown): string => pickleDumps(v).toString('hex');

/** Values the writer keeps as they are (what the reader gives back for them). */
export const picklable: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 600n), max: 2n ** 600n }).filter((n) => n < -(2n ** 53n) || n > 2n ** 53n),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('pickle writer: opcodes', () => {
  it('writes the header, scalars and STOP as Python does at protocol 2', () => {
    expect(hex(null)).toBe('80024e2e');
    expect(hex(true)).toBe('8002882e');
    expect(hex(false)).toBe('8002892e');
    expect(hex(7)).toBe('80024b072e'); // BININT1
    expect(hex(300)).toBe('80024d2c012e'); // BININT2
    expect(hex(-1)).toBe('80024affffffff2e'); // BININT
    expect(hex(2 ** 40)).toBe('80028a060000000000012e'); // LONG1, as Python: 6 bytes
    expect(hex(1.5)).toBe('8002473ff80000000000002e'); // BINFLOAT, big-endian
    expect(hex('é')).toBe('80025802000000c3a92e'); // BINUNICODE
    // bytes: _codecs.encode('\xff', 'latin1'), Python 3's protocol-2 form.
    expect(hex(Buffer.from([0xff]))).toBe(
      `8002${Buffer.from('c_codecs\nencode\n').toString('hex')}5802000000c3bf5806000000${Buffer.from('latin1').toString('hex')}86522e`,
    );
  });

  it('encodes ints as Python encode_long does (shortest two’s complement)', () => {
    const cases: Array<[bigint, string]> = [
      [0n, ''],
      [127n, '7f'],
      [128n, '8000'],
      [255n, 'ff00'],
      [-1n, 'ff'],
      [-128n, '80'],
      [-129n, '7fff'],
      [2n ** 63n, '000000000000008000'],
    ];
    for (const [n, bytes] of cases) expect(encodeLong(n).toString('hex')).toBe(bytes);
  });

  it('batches lists and dicts by 1000 with MARK ... APPENDS / SETITEMS', () => {
    const list = Array.from({ length: 2001 }, (_, i) => i % 2);
    const body = pickleDumps(list);
    expect(body.filter((b) => b === 0x65)).toHaveLength(2); // two APPENDS
    expect(body.filter((b) => b === 0x61)).toHaveLength(1); // one APPEND for the last item
    expect(load(body)).toEqual(list);
    const dict = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`k${i}`, i]));
    expect(load(pickleDumps(dict))).toEqual(dict);
  });

  it('is the pickle serializer: dumps(x, "pickle") gives kombu’s labels', () => {
    const encoded = dumps({ a: [1, 2n ** 80n] }, 'pickle');
    expect(encoded.contentType).toBe('application/x-python-serialize');
    expect(encoded.contentEncoding).toBe('binary');
    expect(load(encoded.body)).toEqual({ a: [1, 2n ** 80n] });
  });
});

describe('pickle writer: what comes back', () => {
  it('round-trips every picklable value through the reader', () => {
    fc.assert(
      fc.property(picklable, (value) => {
        expect(load(pickleDumps(value))).toEqual(value);
      }),
      { numRuns: 3000 },
    );
  });

  it('keeps -0, NaN, ±Infinity and unsafe integers as floats; bigints as ints', () => {
    const back = load(pickleDumps([-0, NaN, Infinity, -Infinity, 2 ** 60, 2n ** 60n, 12n]));
    expect(back).toEqual([-0, NaN, Infinity, -Infinity, 2 ** 60, 2n ** 60n, 12]);
    expect(Object.is((back as number[])[0], -0)).toBe(true);
  });

  it('follows JSON for the rest: toJSON, skipped properties, None for holes', () => {
    const at = new Date('2024-05-06T07:08:09.123Z');
    const fn = (): void => undefined;
    expect(load(pickleDumps({ at, u: undefined, f: fn, list: [undefined, fn] }))).toEqual({
      at: '2024-05-06T07:08:09.123Z',
      list: [null, null],
    });
  });

  it('keeps a lone surrogate as Python’s surrogatepass writes it', () => {
    // The library's reader decodes UTF-8 strictly per WHATWG (U+FFFD); Python reads '\ud800'.
    expect(pickleDumps('a\ud800b').subarray(7, 12).toString('hex')).toBe('61eda08062');
    expect(hex('😀')).toBe('80025804000000f09f98802e');
  });

  it('keys like __proto__ stay plain keys', () => {
    const obj = JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1}') as object;
    const back = load(pickleDumps(obj)) as Record<string, unknown>;
    expect(Object.keys(back)).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('pickle writer: refusals', () => {
  it('refuses cycles, excessive depth and top-level non-values with EncodeError', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(() => pickleDumps(cyclic)).toThrow(EncodeError);
    expect(() => pickleDumps(cyclic)).toThrow(/cyclic/);
    // dumps measures the value against the decode limits first: a cycle is refused as too deep.
    expect(() => dumps(cyclic, 'pickle')).toThrow(EncodeError);
    let deep: unknown = 1;
    for (let i = 0; i <= MAX_PICKLE_DEPTH; i++) deep = [deep];
    expect(() => pickleDumps(deep)).toThrow(/nested more than 1000/);
    expect(() => pickleDumps(undefined)).toThrow(EncodeError);
    expect(() => pickleDumps(Symbol('s'))).toThrow(EncodeError);
  });

  it('allows the same object twice when it is not a cycle', () => {
    const shared = { a: 1 };
    expect(load(pickleDumps([shared, shared]))).toEqual([{ a: 1 }, { a: 1 }]);
  });
});
