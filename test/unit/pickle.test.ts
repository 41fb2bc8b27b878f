/**
 * The pickle reader: pickles written by Python 3.11 (protocols 0, 2 and 5; fixtures made
 * with /usr/bin/python3, see test/interop/pickle-python.test.ts for the property test),
 * nothing called from the stream, no prototype reached, and hostile streams (random,
 * truncated, mutated, generated opcodes: over 10,000 cases) ending in a typed error.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TaskError } from '../../src/celery/exceptions.js';
import { exceptionFromMeta } from '../../src/celery/exceptions.js';
import { DecodeError } from '../../src/errors.js';
import { PickledObject } from '../../src/kombu/pickle.js';
import { dumps, loads, PICKLE_CONTENT_TYPE } from '../../src/kombu/serialization.js';

const fixtures = JSON.parse(
  readFileSync(new URL('./fixtures/pickles.json', import.meta.url), 'utf8'),
) as Record<string, Record<string, string>>;

const load = (body: Uint8Array, limits = {}): unknown =>
  loads(Buffer.from(body), PICKLE_CONTENT_TYPE, 'binary', { accept: ['pickle'], limits });
const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Every protocol's fixture of a case decodes to the same value, returned. */
function decoded(name: string): unknown {
  const byProtocol = fixtures[name] ?? {};
  const values = Object.values(byProtocol).map((hex) => load(Buffer.from(hex, 'hex')));
  expect(values).toHaveLength(3);
  for (const v of values.slice(1)) expect(v).toEqual(values[0]);
  return values[0];
}

describe('pickle: values written by Python', () => {
  it('a Celery result: dict, tuple, aware datetime, big ints', () => {
    expect(decoded('celery_result')).toEqual({
      status: 'SUCCESS',
      result: {
        n: 42,
        tup: [1, 'a'],
        dt: '2024-05-06T07:08:09.123456Z',
        big: 2n ** 100n,
        neg: -(2n ** 70n),
      },
      traceback: null,
      children: [],
      task_id: 'abc',
    });
  });

  it('datetimes as kombu JSON writes them, with fixed and IANA zones; timedelta as seconds', () => {
    expect(decoded('tz')).toEqual([
      '2024-01-01T12:00:00+05:30',
      '2024-07-01T12:00:00+02:00',
      '2024-01-02T03:04:05',
      '2024-02-29T00:00:00',
      '01:02:03.000004',
      86402.5,
    ]);
  });

  it('Decimal, UUID, OrderedDict, sets, bytes, floats, unicode, int keys', () => {
    const misc = decoded('misc') as Record<string, unknown>;
    expect(misc).toEqual({
      '1': 'int key',
      dec: '-1.50',
      uuid: '12345678-1234-5678-1234-567812345678',
      od: { b: 1, a: 2 },
      set: [3],
      fs: ['q'],
      bytes: Buffer.from([0, 0xff]),
      ba: Buffer.from('ab'),
      f: 1.5,
      inf: Infinity,
      t: true,
      n: null,
      u: 'h\u00e9\u4e16\u{1F600}\n\\',
      ['__proto__']: { polluted: true },
      constructor: 'c',
    });
    // `__proto__` is an own key: no prototype was set, nothing polluted.
    expect(Object.getPrototypeOf(misc)).toBe(Object.prototype);
    expect(Object.keys(misc)).toContain('__proto__');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.keys(misc['od'] as object)).toEqual(['b', 'a']);
  });

  it('other objects become inert PickledObject placeholders', () => {
    const [fraction, namespace] = decoded('objects') as PickledObject[];
    expect(fraction).toBeInstanceOf(PickledObject);
    expect({ ...fraction }).toEqual({
      __module__: 'fractions',
      __name__: 'Fraction',
      args: [1, 3],
      state: null,
    });
    expect({ ...namespace }).toEqual({
      __module__: 'argparse',
      __name__: 'Namespace',
      args: [],
      state: { a: 1 },
    });
    expect(Object.isFrozen(fraction)).toBe(true);
  });
});

describe('pickle: exceptions give the TaskError the JSON path gives', () => {
  const viaJson = (meta: unknown): TaskError => {
    const { body, contentType, contentEncoding } = dumps(meta, 'json');
    return exceptionFromMeta(loads(body, contentType, contentEncoding), null, 'FAILURE');
  };
  const same = (a: TaskError, b: TaskError): void => {
    expect([a.name, a.excType, a.excModule, a.excArgs, a.message, a.constructor]).toEqual([
      b.name,
      b.excType,
      b.excModule,
      b.excArgs,
      b.message,
      b.constructor,
    ]);
  };

  it('builtins.ValueError (exceptions.ValueError in protocols 0-2)', () => {
    const meta = decoded('failure') as { result: unknown };
    const err = exceptionFromMeta(meta.result, null, 'FAILURE');
    same(err, viaJson({ exc_type: 'ValueError', exc_message: ['bad', 2], exc_module: 'builtins' }));
    expect(String(err)).toBe("ValueError: ('bad', 2)");
  });

  it('celery.exceptions.Retry and an UnpickleableExceptionWrapper', () => {
    same(
      exceptionFromMeta(decoded('retry'), null, 'FAILURE'),
      viaJson({ exc_type: 'Retry', exc_message: ['again', null, 5], exc_module: 'celery.exceptions' }),
    );
    same(
      exceptionFromMeta(decoded('wrapper'), null, 'FAILURE'),
      viaJson({ exc_type: 'Boom', exc_message: ['x'], exc_module: 'myapp.errors' }),
    );
  });

  it('any class: a placeholder read as the exception of that class', () => {
    // Python 2 style: GLOBAL myapp.errors Oops, REDUCE ('boom',)
    const body = bytes("cmyapp.errors\nOops\n(S'boom'\ntR.");
    const value = load(body);
    expect(value).toBeInstanceOf(PickledObject);
    same(
      exceptionFromMeta(value, null, 'FAILURE'),
      viaJson({ exc_type: 'Oops', exc_message: ['boom'], exc_module: 'myapp.errors' }),
    );
  });
});

describe('pickle: nothing is called from the stream', () => {
  it('os.system, eval and getattr chains stay records', () => {
    const system = load(bytes("cos\nsystem\n(S'echo pwned'\ntR.")) as PickledObject;
    expect({ ...system }).toEqual({
      __module__: 'os',
      __name__: 'system',
      args: ['echo pwned'],
      state: null,
    });
    const evil = load(bytes('c__builtin__\neval\n(Vprocess.exit(1)\ntR.')) as PickledObject;
    expect(evil.__module__).toBe('builtins');
    expect(evil.__name__).toBe('eval');
    // getattr(subprocess.Popen, '__init__')('ls'): a name, then a record.
    const chain = load(
      bytes('\x80\x02cbuiltins\ngetattr\ncsubprocess\nPopen\nX\x08\x00\x00\x00__init__\x86R(Vls\ntR.'),
    ) as PickledObject;
    expect([chain.__module__, chain.__name__, chain.args]).toEqual(['subprocess', 'Popen.__init__', ['ls']]);
    // A bare class reference.
    expect({ ...(load(bytes('cos\nsystem\n.')) as object) }).toEqual({
      __module__: 'os',
      __name__: 'system',
      args: null,
      state: null,
    });
  });

  it('refuses what cannot be represented: persistent ids, extensions, out-of-band buffers', () => {
    for (const body of ['\x80\x02X\x01\x00\x00\x00aQ.', 'P1\n.', '\x80\x02\x82\x01.', '\x80\x05\x97.']) {
      expect(() => load(bytes(body))).toThrow(DecodeError);
    }
  });

  it('refuses ints over 4300 digits, as Python 3.11 does for their text', () => {
    expect(() => load(bytes(`L${'9'.repeat(4301)}L\n.`))).toThrow(/4300 digits/);
    expect(load(bytes(`L${'9'.repeat(4300)}L\n.`))).toBe(10n ** 4300n - 1n);
    const long4 = Buffer.concat([
      bytes('\x80\x02\x8b'),
      Buffer.from([0x00, 0x08, 0, 0]),
      Buffer.alloc(2048, 1),
      bytes('.'),
    ]);
    expect(() => load(long4)).toThrow(DecodeError);
    // LONG1 is two's complement: -1 is one 0xff byte.
    expect(load(bytes('\x80\x02\x8a\x01\xff.'))).toBe(-1);
    expect(load(bytes('\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.'))).toBe(2n ** 64n);
  });
});

describe('pickle: hostile streams end in a typed error', () => {
  const onlyTyped = (body: Uint8Array): void => {
    try {
      load(body);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
    }
  };
  const samples = Object.values(fixtures).flatMap((p) =>
    Object.values(p).map((hex) => Buffer.from(hex, 'hex')),
  );

  it('text opcodes as long as the body parse in linear time (no regex backtracking)', () => {
    expect(() => load(bytes(`F${'1'.repeat(5_000_000)}x\n.`))).toThrow(DecodeError);
    expect(() => load(bytes(`L${'1'.repeat(5_000_000)}x\n.`))).toThrow(DecodeError);
    expect(load(bytes(`S'${'\\1'.repeat(1_000_000)}'\n.`))).toHaveLength(1_000_000);
    expect(load(bytes("S'a\\x41\\101\\n'\n."))).toBe('aAA\n');
    expect(load(bytes('F-1.5e-3\n.'))).toBe(-0.0015);
  });

  it('every truncation of every fixture', () => {
    let cases = 0;
    for (const sample of samples) {
      // From 1: an empty body is returned as is, as kombu does.
      for (let n = 1; n < sample.length; n++) {
        expect(() => load(sample.subarray(0, n))).toThrow(DecodeError);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(5000);
  });

  it('4,000 random streams, with and without a protocol header', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 200 }), (header, body) => {
        onlyTyped(header ? Buffer.concat([Buffer.from([0x80, 5]), body]) : body);
      }),
      { numRuns: 4000 },
    );
  });

  it('4,000 fixtures with bytes changed', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...samples),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (sample, edits) => {
          const body = Buffer.from(sample);
          for (const [at, byte] of edits) body[at % body.length] = byte;
          onlyTyped(body);
        },
      ),
      { numRuns: 4000 },
    );
  });

  it('4,000 generated opcode sequences', () => {
    // Opcodes with well-formed arguments, in random order: reaches deep paths (memo, marks,
    // REDUCE, BUILD, sets) far more often than random bytes do.
    const op = fc.oneof(
      fc.constantFrom(
        '(',
        ')',
        ']',
        '}',
        'N',
        '\x88',
        '\x89',
        'a',
        'e',
        's',
        'u',
        't',
        'l',
        'd',
        'R',
        'b',
        '0',
        '1',
        '2',
      ),
      fc.constantFrom('\x85', '\x86', '\x87', '\x8f', '\x90', '\x91', '\x81', '\x92', '\x93', '\x94', 'o'),
      fc.nat(255).map((n) => `K${String.fromCharCode(n)}`),
      fc.nat(20).map((n) => `q${String.fromCharCode(n)}`),
      fc.nat(20).map((n) => `h${String.fromCharCode(n)}`),
      fc.string({ maxLength: 8 }).map((s) => `\x8c${String.fromCharCode(s.length)}${s}`),
      fc.constantFrom(
        'cos\nsystem\n',
        'cbuiltins\nset\n',
        'cdatetime\ndatetime\n',
        'ccopyreg\n_reconstructor\n',
      ),
      fc.constantFrom('cbuiltins\ngetattr\n', 'c_codecs\nencode\n', 'Vlatin1\n', 'I01\n', 'F1.5\n', "S'x'\n"),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        onlyTyped(bytes(`\x80\x04${ops.join('')}.`));
      }),
      { numRuns: 4000 },
    );
  });
});
