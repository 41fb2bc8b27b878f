import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, ContentDisallowedError, DecodeError, EncodeError } from '../../src/errors.js';
import {
  contentTypeFor,
  dumps,
  loads,
  prepareAcceptContent,
  rawEncode,
  registerSerializer,
  serializerByName,
  unregisterSerializer,
} from '../../src/kombu/serialization.js';

/** JSON-able values, with -0 excluded (JSON writes it as 0). */
const jsonValue = fc
  .jsonValue({ noUnicodeString: false })
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown);

/** True when a map anywhere in `v` has a `__proto__` key (see the msgpack tests). */
function hasProtoKey(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some(hasProtoKey);
  return Object.keys(v).some((k) => k === '__proto__' || hasProtoKey((v as Record<string, unknown>)[k]));
}

/** Values Python's json can produce, including non-finite floats. */
const pythonJsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(NaN, Infinity, -Infinity),
    fc.double({ noDefaultInfinity: true, noNaN: true }).filter((d) => !Object.is(d, -0)),
    fc.string(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('dumps', () => {
  it('picks raw for bytes, text for strings, json otherwise', () => {
    expect(dumps(Buffer.from([1, 2]))).toEqual({
      body: Buffer.from([1, 2]),
      contentType: 'application/data',
      contentEncoding: 'binary',
    });
    expect(dumps('héllo')).toEqual({
      body: Buffer.from('héllo', 'utf8'),
      contentType: 'text/plain',
      contentEncoding: 'utf-8',
    });
    const enc = dumps({ a: 1 });
    expect(enc.contentType).toBe('application/json');
    expect(enc.contentEncoding).toBe('utf-8');
    expect(enc.body.toString()).toBe('{"a":1}');
  });

  it('raw accepts strings like kombu raw_encode', () => {
    expect(dumps('x', 'raw')).toEqual(rawEncode('x'));
    expect(rawEncode('x').contentEncoding).toBe('utf-8');
    expect(dumps(new Uint8Array([7]), 'raw').body).toEqual(Buffer.from([7]));
    expect(() => dumps(1, 'raw')).toThrow(EncodeError);
    expect(() => dumps(1, 'text')).toThrow(EncodeError);
  });

  it('refuses non-JSON-able values with EncodeError', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const bad of [1n, () => 1, Symbol('s'), undefined, { a: { b: 1n } }, [() => 1], cyclic]) {
      expect(() => dumps(bad, 'json')).toThrow(EncodeError);
    }
    const cyclicNaN: unknown[] = [NaN];
    cyclicNaN.push(cyclicNaN);
    expect(() => dumps(cyclicNaN, 'json')).toThrow(EncodeError);
  });

  it('writes NaN and Infinity as Python does', () => {
    expect(dumps({ a: NaN, b: [Infinity, -Infinity, 1.5], c: 'NaN' }, 'json').body.toString()).toBe(
      '{"a":NaN,"b":[Infinity,-Infinity,1.5],"c":"NaN"}',
    );
  });

  it('refuses unknown serializers (pickle encodes plain data: pickle-encoder.test.ts)', () => {
    expect(dumps({}, 'pickle').contentType).toBe('application/x-python-serialize');
    expect(() => dumps({}, 'nope')).toThrow(ArgumentError);
  });

  it('encodes each built-in with its kombu labels', () => {
    expect(dumps(1, 'msgpack')).toMatchObject({
      contentType: 'application/x-msgpack',
      contentEncoding: 'binary',
    });
    expect(dumps(1, 'yaml')).toMatchObject({ contentType: 'application/x-yaml', contentEncoding: 'utf-8' });
    expect(dumps('a', 'text')).toMatchObject({ contentType: 'text/plain', contentEncoding: 'utf-8' });
  });

  it('quotes YAML 1.1 look-alikes so PyYAML reads strings back', () => {
    const text = dumps({ a: 'yes', b: 'on', c: '1_000' }, 'yaml').body.toString();
    expect(text).toContain("a: 'yes'");
    expect(text).toContain("b: 'on'");
    expect(text).toContain("c: '1_000'");
  });
});

describe('round trips', () => {
  it('json', () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        const { body, contentType, contentEncoding } = dumps(v, 'json');
        expect(loads(body, contentType, contentEncoding, { accept: ['json'] })).toEqual(v);
      }),
    );
  });

  it('json with NaN/Infinity', () => {
    fc.assert(
      fc.property(pythonJsonValue, (v) => {
        const { body } = dumps(v, 'json');
        expect(loads(body, 'application/json', 'utf-8')).toEqual(v);
      }),
    );
  });

  it('msgpack refuses a __proto__ map key with a typed DecodeError (no prototype is set)', () => {
    // @msgpack/msgpack rejects the key outright to rule out prototype pollution; JSON keeps
    // it as a plain key. A Python result dict with that key must be sent as JSON.
    const v = JSON.parse('{"__proto__": false, "ok": 1}') as unknown;
    const { body, contentType, contentEncoding } = dumps(v, 'msgpack');
    expect(() => loads(body, contentType, contentEncoding, { accept: ['msgpack'] })).toThrow(DecodeError);
    expect(({} as Record<string, unknown>)['ok']).toBeUndefined();
    const json = dumps(v, 'json');
    expect(Object.keys(loads(json.body, json.contentType, json.contentEncoding) as object)).toEqual([
      '__proto__',
      'ok',
    ]);
  });

  it('msgpack', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          // A __proto__ key is refused by design: the test above.
          jsonValue.filter((v) => !hasProtoKey(v)),
          fc.uint8Array().map((u) => ({ bin: u })),
        ),
        (v) => {
          const { body, contentType, contentEncoding } = dumps(v, 'msgpack');
          const out = loads(body, contentType, contentEncoding, { accept: ['msgpack'] });
          if (v !== null && typeof v === 'object' && 'bin' in v) {
            // msgpack bin comes back as bytes (a view on the body).
            expect(Buffer.from((out as { bin: Uint8Array }).bin)).toEqual(Buffer.from(v.bin as Uint8Array));
          } else {
            expect(out).toEqual(v);
          }
        },
      ),
    );
  });

  it('yaml on safe values', () => {
    fc.assert(
      fc.property(fc.oneof(jsonValue, pythonJsonValue), (v) => {
        const { body, contentType, contentEncoding } = dumps(v, 'yaml');
        expect(loads(body, contentType, contentEncoding, { accept: ['yaml'] })).toEqual(v);
      }),
    );
  });

  it('raw bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1 }), (u) => {
        const { body, contentType, contentEncoding } = dumps(Buffer.from(u));
        const out = loads(body, contentType, contentEncoding, { accept: [] });
        expect(Buffer.isBuffer(out)).toBe(true);
        expect(out).toEqual(Buffer.from(u));
      }),
    );
  });

  it('text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1 }), (s) => {
        const { body, contentType, contentEncoding } = dumps(s);
        expect(loads(body, contentType, contentEncoding, { accept: ['json'] })).toBe(s);
      }),
    );
  });
});

describe('loads', () => {
  it('reads Python json.dumps output, NaN and Infinity included', () => {
    // Python: json.dumps({"r": [float("nan"), float("inf"), -float("inf")], "s": "NaN Infinity"})
    const py = '{"r": [NaN, Infinity, -Infinity], "s": "NaN Infinity", "t": "say \\"NaN\\""}';
    expect(loads(Buffer.from(py), 'application/json', 'utf-8')).toEqual({
      r: [NaN, Infinity, -Infinity],
      s: 'NaN Infinity',
      t: 'say "NaN"',
    });
    expect(loads(Buffer.from('NaN'), 'application/json', 'utf-8')).toBeNaN();
    expect(loads(Buffer.from('-Infinity'), 'application/json', 'utf-8')).toBe(-Infinity);
  });

  it('reads a Celery 4.4 result message', () => {
    const py =
      '{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["bad"], "exc_module": "builtins"}, ' +
      '"traceback": "Traceback ...", "children": [], "task_id": "d4f0c6a2-8e47-4b7c-9f2a-3c7f3e0b9a11"}';
    expect(
      loads(Buffer.from(py), 'application/json', 'utf-8', { accept: new Set(['application/json']) }),
    ).toMatchObject({
      status: 'FAILURE',
      result: { exc_type: 'ValueError', exc_message: ['bad'] },
    });
  });

  it('still rejects malformed JSON that mentions NaN', () => {
    for (const text of ['{"a": NaNx}', '[NaN,', '{"NaN": }', 'Infinit', '[-NaN]']) {
      expect(() => loads(Buffer.from(text), 'application/json', 'utf-8')).toThrow(DecodeError);
    }
  });

  it('refuses pickle unless the accept list names it', () => {
    // Python: pickle.dumps([1, 'a'], protocol=2)
    const body = Buffer.from('80025d7100284b015801000000617101652e', 'hex');
    for (const accept of [undefined, ['json'], ['application/json', 'msgpack']]) {
      const err = (() => {
        try {
          loads(body, 'application/x-python-serialize', 'binary', accept === undefined ? {} : { accept });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(ContentDisallowedError);
      expect((err as ContentDisallowedError).code).toBe('CONTENT_DISALLOWED');
      expect((err as Error).message).toMatch(/content of type pickle \(application\/x-python-serialize\)/);
    }
    for (const accept of [['pickle'], ['application/x-python-serialize'], new Set(['pickle', 'json'])]) {
      expect(loads(body, 'application/x-python-serialize', 'binary', { accept })).toEqual([1, 'a']);
    }
  });

  it("heads refusals and parse errors with the caller's label", () => {
    const opts = { label: 'task 42' };
    expect(() => loads(Buffer.from([0x80]), 'application/x-python-serialize', 'binary', opts)).toThrow(
      /^task 42: Refusing to deserialize disabled content of type pickle/,
    );
    expect(() => loads(Buffer.from('{'), 'application/json', 'utf-8', opts)).toThrow(
      /^task 42: cannot decode application\/json body: /,
    );
    expect(() =>
      loads(Buffer.from([0x80, 0x02]), 'application/x-python-serialize', 'binary', {
        ...opts,
        accept: ['pickle'],
      }),
    ).toThrow(/^task 42: cannot decode application\/x-python-serialize body: pickle data was truncated/);
  });

  it("uses kombu's wording outside the accept list", () => {
    expect(() => loads(Buffer.from('{}'), 'application/json', 'utf-8', { accept: ['msgpack'] })).toThrow(
      'Refusing to deserialize untrusted content of type json (application/json)',
    );
    expect(() => loads(Buffer.from('x'), 'foo/bar', 'utf-8', { accept: ['json'] })).toThrow(
      'Refusing to deserialize untrusted content of type foo/bar',
    );
  });

  it('accepts names or mime types, and always application/data and text/plain', () => {
    const body = Buffer.from('[1]');
    expect(loads(body, 'application/json', 'utf-8', { accept: ['json'] })).toEqual([1]);
    expect(loads(body, 'application/json', 'utf-8', { accept: ['application/json'] })).toEqual([1]);
    expect(loads(body, 'application/json', 'utf-8', { accept: new Set(['json']) })).toEqual([1]);
    expect(loads(body, 'application/data', 'binary', { accept: [] })).toEqual(body);
    expect(loads(body, 'text/plain', 'utf-8', { accept: [] })).toBe('[1]');
    expect(loads(body, undefined, undefined, { accept: [] })).toEqual(body);
  });

  it('returns undecoded types as bytes or text by content encoding', () => {
    expect(loads(Buffer.from('hé'), 'application/x-custom', 'utf-8')).toBe('hé');
    expect(loads(Buffer.from('hé'), 'application/x-custom', 'binary')).toEqual(Buffer.from('hé'));
    expect(loads(Buffer.from([0xe9]), 'application/x-custom', 'latin1')).toBe('é');
    expect(() => loads(Buffer.from([0xff]), 'text/plain', 'utf-8')).toThrow(DecodeError);
    expect(() => loads(Buffer.from('x'), 'text/plain', 'no-such-encoding')).toThrow(DecodeError);
  });

  it('returns an empty body undecoded, as kombu does', () => {
    expect(loads(Buffer.alloc(0), 'application/json', 'utf-8')).toEqual(Buffer.alloc(0));
  });

  it('names the content type and keeps the cause on malformed bytes', () => {
    try {
      loads(Buffer.from('{'), 'application/json', 'utf-8');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).code).toBe('DECODE_ERROR');
      expect((err as Error).message).toContain('application/json');
      expect((err as Error).cause).toBeInstanceOf(SyntaxError);
    }
  });

  it('refuses bodies over maxBytes', () => {
    const body = Buffer.from('[1,2,3]');
    expect(loads(body, 'application/json', 'utf-8', { maxBytes: 7 })).toEqual([1, 2, 3]);
    try {
      loads(body, 'application/json', 'utf-8', { maxBytes: 6 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).code).toBe('BODY_TOO_LARGE');
    }
  });

  it('never runs YAML python tags', () => {
    const evil = Buffer.from('!!python/object/apply:os.system ["echo hi"]\n');
    expect(() => loads(evil, 'application/x-yaml', 'utf-8')).toThrow(DecodeError);
  });

  it('rejects a __proto__ key in msgpack rather than polluting', () => {
    const body = Buffer.from([0x81, 0xa9, ...Buffer.from('__proto__'), 0x01]);
    expect(() => loads(body, 'application/x-msgpack', 'binary')).toThrow(DecodeError);
  });

  it('throws only DecodeError or ContentDisallowedError on arbitrary input', () => {
    const types = fc.constantFrom(
      'application/json',
      'application/x-msgpack',
      'application/x-yaml',
      'application/x-python-serialize',
      'application/data',
      'text/plain',
      'application/x-unknown',
      '',
    );
    const encodings = fc.constantFrom('utf-8', 'binary', 'latin1', 'bogus', '', undefined);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.string({ maxLength: 64 }).map((s) => Buffer.from(s)),
        ),
        types,
        encodings,
        fc.option(fc.subarray(['json', 'msgpack', 'yaml', 'application/json']), { nil: undefined }),
        (bytes, type, enc, accept) => {
          try {
            loads(Buffer.from(bytes), type, enc, accept === undefined ? {} : { accept });
          } catch (err) {
            expect(err).toBeInstanceOf(DecodeError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

const BUILTIN_PICKLE = serializerByName('pickle')!;

describe('registry', () => {
  it('prepareAcceptContent maps names to mime types', () => {
    expect(prepareAcceptContent(['json', 'application/x-msgpack', 'yaml', 'pickle'])).toEqual(
      new Set([
        'application/json',
        'application/x-msgpack',
        'application/x-yaml',
        'application/x-python-serialize',
      ]),
    );
    expect(() => prepareAcceptContent(['jsno'])).toThrow(ArgumentError);
  });

  it('knows content types by name', () => {
    expect(contentTypeFor('json')).toBe('application/json');
    expect(contentTypeFor('pickle')).toBe('application/x-python-serialize');
    expect(() => contentTypeFor('nope')).toThrow(ArgumentError);
    expect(serializerByName('yaml')?.contentEncoding).toBe('utf-8');
    expect(serializerByName('pickle')?.contentType).toBe('application/x-python-serialize');
  });

  it('registers and unregisters a custom serializer', () => {
    registerSerializer('upper', {
      contentType: 'application/x-upper',
      contentEncoding: 'utf-8',
      encode: (d) => Buffer.from(String(d).toUpperCase()),
      decode: (b) => `decoded:${b.toString('utf8')}`,
    });
    try {
      const enc = dumps('abc', 'upper');
      expect(enc).toEqual({
        body: Buffer.from('ABC'),
        contentType: 'application/x-upper',
        contentEncoding: 'utf-8',
      });
      expect(loads(enc.body, enc.contentType, enc.contentEncoding, { accept: ['upper'] })).toBe(
        'decoded:ABC',
      );
      expect(prepareAcceptContent(['upper'])).toEqual(new Set(['application/x-upper']));
    } finally {
      unregisterSerializer('upper');
    }
    expect(() => dumps('abc', 'upper')).toThrow(ArgumentError);
    expect(loads(Buffer.from('ABC'), 'application/x-upper', 'utf-8')).toBe('ABC');
  });

  it('wraps a custom encoder failure in EncodeError', () => {
    registerSerializer('boom', {
      contentType: 'application/x-boom',
      contentEncoding: 'binary',
      encode: () => {
        throw new Error('nope');
      },
      decode: () => {
        throw new Error('nope');
      },
    });
    try {
      expect(() => dumps(1, 'boom')).toThrow(EncodeError);
      expect(() => loads(Buffer.from('x'), 'application/x-boom', 'binary')).toThrow(DecodeError);
    } finally {
      unregisterSerializer('boom');
    }
  });

  it('lets pickle be registered in place of the built-in reader, still opt-in', () => {
    const codec = { contentEncoding: 'binary', encode: () => Buffer.from('P'), decode: () => 'custom' };
    registerSerializer('pickle', { ...codec, contentType: 'application/x-python-serialize' });
    try {
      expect(dumps(1, 'pickle').body.toString()).toBe('P');
      const body = Buffer.from([0x80, 0x02, 0x4b, 0x01, 0x2e]);
      expect(loads(body, 'application/x-python-serialize', 'binary', { accept: ['pickle'] })).toBe('custom');
      expect(() => loads(body, 'application/x-python-serialize', 'binary')).toThrow(ContentDisallowedError);
    } finally {
      unregisterSerializer('pickle');
      registerSerializer('pickle', BUILTIN_PICKLE);
    }
    expect(
      loads(Buffer.from([0x80, 0x02, 0x4b, 0x01, 0x2e]), 'application/x-python-serialize', 'binary', {
        accept: ['pickle'],
      }),
    ).toBe(1);
  });

  it('refuses bad definitions', () => {
    const codec = { contentEncoding: 'binary', encode: () => Buffer.alloc(0), decode: () => null };
    expect(() => registerSerializer('', { ...codec, contentType: 'a/b' })).toThrow(ArgumentError);
    expect(() => registerSerializer('x', { ...codec, contentType: 'nope' })).toThrow(ArgumentError);
  });
});
