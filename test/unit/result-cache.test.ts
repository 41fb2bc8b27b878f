import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResultCache } from '../../src/celery/result-cache.js';
import { ArgumentError } from '../../src/errors.js';

describe('ResultCache', () => {
  it('is off by default (-1): get misses, set is a no-op', () => {
    const cache = new ResultCache<number>();
    expect(cache.limit).toBe(-1);
    expect(cache.disabled).toBe(true);
    cache.set('a', 1);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.has('a')).toBe(false);
    expect(cache.size).toBe(0);
  });

  it('keeps everything with limit 0', () => {
    const cache = new ResultCache<number>(0);
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
    expect(cache.size).toBe(1000);
    expect(cache.get('k0')).toBe(0);
  });

  it('evicts the least recently used beyond the limit', () => {
    const cache = new ResultCache<string>(2);
    cache.set('a', 'A').set('b', 'B');
    expect(cache.get('a')).toBe('A'); // a is now most recent
    cache.set('c', 'C'); // evicts b
    expect(cache.has('b')).toBe(false);
    expect([...cache.keys()]).toEqual(['a', 'c']);
    cache.set('a', 'A2'); // update refreshes recency
    cache.set('d', 'D'); // evicts c
    expect([...cache.keys()]).toEqual(['a', 'd']);
    expect(cache.get('a')).toBe('A2');
  });

  it('stores falsy values and supports delete/clear', () => {
    const cache = new ResultCache<unknown>(3);
    cache.set('n', null).set('z', 0).set('u', undefined);
    expect(cache.get('n')).toBeNull();
    expect(cache.get('z')).toBe(0);
    expect(cache.has('u')).toBe(true);
    expect(cache.delete('n')).toBe(true);
    expect(cache.delete('n')).toBe(false);
    expect(cache.size).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it('rejects bad limits', () => {
    for (const bad of [-2, 1.5, NaN, Infinity]) expect(() => new ResultCache(bad)).toThrow(ArgumentError);
  });

  it('matches a reference LRU model', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        key: fc.integer({ min: 0, max: 9 }),
        value: fc.integer(),
      }),
      fc.record({ kind: fc.constant('get' as const), key: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 9 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: -1, max: 5 }), fc.array(op, { maxLength: 60 }), (limit, ops) => {
        const cache = new ResultCache<number>(limit);
        let model: Array<[string, number]> = [];
        for (const o of ops) {
          const key = String(o.key);
          const idx = model.findIndex(([k]) => k === key);
          if (o.kind === 'set') {
            cache.set(key, o.value);
            if (limit === -1) continue;
            if (idx >= 0) model.splice(idx, 1);
            model.push([key, o.value]);
            if (limit > 0 && model.length > limit) model = model.slice(model.length - limit);
          } else if (o.kind === 'get') {
            const expected = idx >= 0 ? model[idx]![1] : undefined;
            expect(cache.get(key)).toBe(expected);
            if (idx >= 0) model.push(...model.splice(idx, 1));
          } else {
            expect(cache.delete(key)).toBe(idx >= 0);
            if (idx >= 0) model.splice(idx, 1);
          }
          expect([...cache.keys()]).toEqual(model.map(([k]) => k));
        }
      }),
    );
  });
});
