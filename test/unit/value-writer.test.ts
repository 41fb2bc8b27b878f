/**
 * The bounded writers: measureValue refuses bombs, cycles and depth before anything is
 * written (linear in distinct parts); writeValue/writeJson write at any depth with an
 * explicit stack and stop at a length.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EncodeError, EncodeLimitError } from '../../src/errors.js';
import { DEFAULT_DECODE_LIMITS } from '../../src/kombu/decode-limits.js';
import {
  JSON_FORMAT,
  PYTHON_JSON_FORMAT,
  measureValue,
  writeJson,
  writeValue,
} from '../../src/kombu/value-writer.js';

/** 12 levels of 10 references to the level below: 10^12 leaves once written. */
function aliasBomb(levels = 12, width = 10): unknown {
  let v: unknown = ['lol'];
  for (let i = 0; i < levels; i++) v = Array.from({ length: width }, () => v);
  return v;
}

function nested(depth: number): unknown {
  let v: unknown = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}

function thrown(fn: () => unknown): EncodeLimitError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EncodeLimitError);
    return err as EncodeLimitError;
  }
  throw new Error('did not throw');
}

describe('measureValue', () => {
  it('matches the JSON length of plain values (strings without escapes)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        const size = measureValue(value);
        // Escapes (quotes, control characters) make the text longer than the estimate.
        expect(size.bytes).toBeLessThanOrEqual(text.length);
        if (!/\\/.test(text)) expect(size.bytes).toBe(text.length);
      }),
      { numRuns: 300 },
    );
  });

  it('gives the depth as decoding counts it', () => {
    expect(measureValue(1).depth).toBe(0);
    expect(measureValue([]).depth).toBe(1);
    expect(measureValue({ a: [[1]] }).depth).toBe(3);
    expect(measureValue(nested(1000)).depth).toBe(1000);
  });

  it('refuses an alias bomb of 12 nested levels at once, naming the limit and the label', () => {
    // Finishing at all shows the walk is linear: written out, the value is 10^12 leaves.
    const err = thrown(() => measureValue(aliasBomb(), DEFAULT_DECODE_LIMITS, 'result of task t1'));
    expect(err.code).toBe('BODY_TOO_LARGE');
    expect(err.limit).toBe('maxDecodedBytes');
    expect(err.message).toMatch(/^result of task t1: .*limit maxDecodedBytes = 67108864/);
  });

  it('counts shared references each time they are written (a wide share past the tracking point)', () => {
    const shared = Array.from({ length: 300 }, (_, i) => [i]);
    const value = { a: shared, b: shared, c: [shared, shared] };
    expect(measureValue(value).bytes).toBe(JSON.stringify(value).length);
    const depthOk = { a: nested(500), b: [nested(500)] };
    expect(measureValue(depthOk).depth).toBe(502);
  });

  it('a shared deep part met again deeper is too deep', () => {
    const deep = nested(600);
    const filler = Array.from({ length: 300 }, () => [1]);
    const value = [filler, deep, [[[[[[[[[[deep]]]]]]]]]]];
    expect(measureValue(value, { maxDepth: 700, maxDecodedBytes: 1e9 }).depth).toBe(611);
    expect(thrown(() => measureValue(value, { maxDepth: 610, maxDecodedBytes: 1e9 })).code).toBe('TOO_DEEP');
  });

  it('refuses depth past maxDepth and cycles (TOO_DEEP), even with no depth limit', () => {
    expect(thrown(() => measureValue(nested(1001))).code).toBe('TOO_DEEP');
    const cyclic: unknown[] = [1];
    cyclic.push(cyclic);
    const err = thrown(() => measureValue(cyclic, { maxDepth: Infinity, maxDecodedBytes: Infinity }));
    expect(err.code).toBe('TOO_DEEP');
    expect(err.message).toMatch(/cycle/);
    const obj: Record<string, unknown> = { a: 1 };
    obj['self'] = { inner: obj };
    expect(thrown(() => measureValue(obj, { maxDepth: Infinity, maxDecodedBytes: Infinity })).code).toBe(
      'TOO_DEEP',
    );
  });

  it('refuses one long shared string written many times', () => {
    const s = 'x'.repeat(1024 * 1024);
    const err = thrown(() => measureValue(Array.from({ length: 100 }, () => s)));
    expect(err.code).toBe('BODY_TOO_LARGE');
  });
});

describe('writeValue / writeJson', () => {
  it('writes what JSON.stringify writes', () => {
    fc.assert(
      fc.property(fc.anything({ withDate: true, withNullPrototype: true }), (value) => {
        let expected: string | undefined;
        try {
          expected = JSON.stringify(value);
        } catch {
          return; // bigint: refused by both
        }
        if (expected === undefined) return;
        expect(writeValue(value, JSON_FORMAT)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('writes 200,000 levels without recursion when the limits allow it', () => {
    const text = writeJson(nested(200_000), { limits: { maxDepth: Infinity, maxDecodedBytes: Infinity } });
    expect(text.length).toBe(400_000);
    expect(text.startsWith('[[[')).toBe(true);
  });

  it('refuses a bomb before writing (writeJson), cuts a repr-style write at its length', () => {
    expect(() => writeJson(aliasBomb())).toThrow(EncodeLimitError);
    const cut = writeValue(aliasBomb(), JSON_FORMAT, { maxLength: 100 });
    expect(cut).toHaveLength(100);
    expect(cut.endsWith('...')).toBe(true);
    expect(() => writeValue(aliasBomb(), JSON_FORMAT, { maxLength: 100, overflow: 'throw' })).toThrow(
      EncodeLimitError,
    );
  });

  it('Python JSON writes NaN and Infinity tokens; bigint is an EncodeError', () => {
    expect(writeJson({ a: [NaN, Infinity, -Infinity, 1] }, { format: PYTHON_JSON_FORMAT })).toBe(
      '{"a":[NaN,Infinity,-Infinity,1]}',
    );
    expect(() => writeJson({ a: 1n })).toThrow(EncodeError);
  });

  it('writes deeper than maxDepth as the format says', () => {
    expect(writeValue([[[1]]], JSON_FORMAT, { maxDepth: 2 })).toBe('[[null]]');
  });
});
