/**
 * Property test against real Python: fast-check describes values (ints of any size, floats
 * with NaN/±Infinity/-0, unicode, bytes, lists, tuples, sets, dicts with int keys, aware and
 * naive datetimes, dates, times, timedeltas, Decimals, UUIDs, exceptions, shared
 * references), /usr/bin/python3 builds and pickles them with protocols 0, 2, 4 and 5
 * (peers/pickle_peer.py) and says what each must decode to (dates through kombu's own JSON
 * encoder); the Node reader must give exactly that for every protocol.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { loads, PICKLE_CONTENT_TYPE } from '../../src/kombu/serialization.js';
import { assertPythonPeers, PEERS_DIR, PYTHON } from './python.js';

type Desc = unknown;

const int = fc.bigInt({ min: -(2n ** 90n), max: 2n ** 90n }).map((v) => ({ int: String(v) }));
const str = fc.string({ unit: 'grapheme', maxLength: 8 });
const hashable: fc.Arbitrary<Desc> = fc.oneof(int, str);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const scalar: fc.Arbitrary<Desc> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  str,
  int,
  fc.double().map((x) => ({ float: Number.isNaN(x) ? 'nan' : Object.is(x, -0) ? '-0.0' : String(x) })),
  fc.uint8Array({ maxLength: 8 }).map((b) => ({ bytes: hex(b) })),
  fc.uint8Array({ maxLength: 8 }).map((b) => ({ bytearray: hex(b) })),
  fc
    .tuple(
      fc.date({
        min: new Date('0001-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      }),
      fc.nat(999_999),
      fc.oneof(fc.constant(null), fc.constant(0), fc.integer({ min: -1439, max: 1439 })),
    )
    .map(([d, us, tz]) => ({
      datetime: [
        d.getUTCFullYear(),
        d.getUTCMonth() + 1,
        d.getUTCDate(),
        d.getUTCHours(),
        d.getUTCMinutes(),
        d.getUTCSeconds(),
        us,
      ],
      tz,
    })),
  fc
    .tuple(
      fc.integer({ min: 1, max: 9999 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 1, max: 28 }),
    )
    .map((d) => ({ date: d })),
  fc.tuple(fc.nat(23), fc.nat(59), fc.nat(59), fc.nat(999_999)).map((t) => ({ time: t })),
  fc
    .tuple(fc.integer({ min: -99_999, max: 99_999 }), fc.nat(86_399), fc.nat(999_999))
    .map((t) => ({ timedelta: t })),
  fc.tuple(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.nat(8)).map(([n, scale]) => {
    const digits = (n < 0n ? -n : n).toString().padStart(scale + 1, '0');
    const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
    return { decimal: `${n < 0n ? '-' : ''}${text}` };
  }),
  fc.uuid().map((u) => ({ uuid: u })),
);

const { value } = fc.letrec<{ value: Desc }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }).map((v) => ({ list: v })),
    fc.array(tie('value'), { maxLength: 4 }).map((v) => ({ tuple: v })),
    fc.array(hashable, { maxLength: 4 }).map((v) => ({ set: v })),
    fc.array(hashable, { maxLength: 4 }).map((v) => ({ frozenset: v })),
    fc
      .array(fc.tuple(fc.oneof(str, int, fc.constantFrom('__proto__', 'constructor')), tie('value')), {
        maxLength: 4,
      })
      .map((v) => ({ dict: v })),
    fc
      .tuple(
        fc.constantFrom('ValueError', 'KeyError', 'RuntimeError', 'Ignore'),
        fc.array(tie('value'), { maxLength: 3 }),
      )
      .map(([exc, args]) => ({ exc, args })),
    tie('value').map((v) => ({ shared: v })),
  ),
}));

/** The decoded value in the peer's plain form (markers for what JSON cannot say). */
function plain(v: unknown): unknown {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $float: 'nan' };
    if (v === Infinity || v === -Infinity) return { $float: v > 0 ? 'inf' : '-inf' };
    if (Object.is(v, -0)) return { $float: '-0' };
    return v;
  }
  if (typeof v === 'bigint') return { $big: String(v) };
  if (Buffer.isBuffer(v)) return { $bytes: v.toString('hex') };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      Object.defineProperty(out, k, { value: plain(x), enumerable: true });
    return out;
  }
  return v;
}

interface PeerLine {
  pickles: Record<string, string>;
  expected: unknown;
}

function pythonPickles(descs: Desc[]): PeerLine[] {
  const out = execFileSync(PYTHON, [join(PEERS_DIR, 'pickle_peer.py')], {
    input: JSON.stringify(descs),
    maxBuffer: 64 * 1024 * 1024,
  });
  return out
    .toString('utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as PeerLine);
}

describe('pickles written by Python round-trip through the reader', () => {
  beforeAll(async () => {
    await assertPythonPeers();
  });

  it('protocols 0, 2, 4 and 5, over generated values', () => {
    let decoded = 0;
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 20 }), (descs) => {
        const lines = pythonPickles(descs);
        expect(lines).toHaveLength(descs.length);
        for (const { pickles, expected } of lines) {
          expect(Object.keys(pickles)).toEqual(['0', '2', '4', '5']);
          for (const hexBody of Object.values(pickles)) {
            const got = loads(Buffer.from(hexBody, 'hex'), PICKLE_CONTENT_TYPE, 'binary', {
              accept: ['pickle'],
            });
            expect(plain(got)).toEqual(expected);
            decoded++;
          }
        }
      }),
      { numRuns: 40, seed: Number(process.env.PICKLE_SEED ?? Date.now() % 100_000) },
    );
    expect(decoded).toBeGreaterThan(400);
  }, 120_000);
});
