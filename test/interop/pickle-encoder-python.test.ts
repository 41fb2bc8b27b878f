/**
 * Pickles written by the Node pickle writer, read by Python's own `pickle.loads`
 * (/usr/bin/python3, peers/pickle_reader.py): over generated values (ints of any size,
 * floats with NaN/±Infinity/-0, unicode with lone surrogates, bytes, lists, dicts), Python
 * must see exactly the value the writer's type mapping promises.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeTaskMessageV1 } from '../../src/celery/task-message.js';
import { pickleDumps } from '../../src/kombu/pickle-encoder.js';
import { assertPythonPeers, PEERS_DIR, PYTHON } from './python.js';

/** Any code point, and lone surrogate halves (which Python's pickle keeps with surrogatepass). */
const text = fc.string({
  unit: fc.oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  ),
  maxLength: 10,
});

const value: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 2100n), max: 2n ** 2100n }),
    text,
    fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.from(b)),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(text, tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** What Python must report for a JS value (the peer's description). */
function expected(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return { int: String(v) };
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) return { int: String(v) };
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return { float: b.toString('hex') };
  }
  if (Buffer.isBuffer(v)) return { bytes: v.toString('hex') };
  if (Array.isArray(v)) return { list: v.map(expected) };
  return { dict: Object.entries(v as object).map(([k, x]) => [k, expected(x)]) };
}

function pythonReads(bodies: Buffer[]): unknown[] {
  const out = execFileSync(PYTHON, [join(PEERS_DIR, 'pickle_reader.py')], {
    input: JSON.stringify(bodies.map((b) => b.toString('hex'))),
    maxBuffer: 64 * 1024 * 1024,
  });
  return out
    .toString('utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as unknown);
}

describe('pickles written by Node are read by Python', () => {
  beforeAll(async () => {
    await assertPythonPeers();
  });

  it('pickle.loads gives the promised value, over generated values', () => {
    let read = 0;
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 25 }), (values) => {
        const got = pythonReads(values.map((v) => pickleDumps(v)));
        expect(got).toEqual(values.map(expected));
        read += got.length;
      }),
      { numRuns: 30 },
    );
    expect(read).toBeGreaterThan(100);
  }, 120_000);

  it('a Celery 3.1 task body as it goes on the wire', () => {
    const { body } = encodeTaskMessageV1({
      task: 'tasks.add',
      args: [2, 2n ** 70n],
      kwargs: { b: Buffer.from('x') },
    });
    expect(pythonReads([pickleDumps(body)])).toEqual([expected(body)]);
  });
});
