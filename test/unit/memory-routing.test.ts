/**
 * Pure parts of the embedded broker: topic and headers matching, and the deque that holds
 * ready messages, checked against simple reference models.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Deque } from '../../src/transport/memory/deque.js';
import { headersMatch, topicMatches, topicWords } from '../../src/transport/memory/exchange-routing.js';

/** The AMQP topic rule written as plainly as possible (exponential, fine for tests). */
function reference(pattern: readonly string[], words: readonly string[]): boolean {
  if (pattern.length === 0) return words.length === 0;
  const [head, ...rest] = pattern;
  if (head === '#') return reference(rest, words) || (words.length > 0 && reference(pattern, words.slice(1)));
  if (words.length === 0) return false;
  return (head === '*' || head === words[0]) && reference(rest, words.slice(1));
}

describe('topic matching', () => {
  it('agrees with the reference rule', () => {
    const word = fc.constantFrom('a', 'b', 'c', '');
    fc.assert(
      fc.property(
        fc.array(fc.oneof(word, fc.constant('*'), fc.constant('#')), { maxLength: 6 }),
        fc.array(word, { maxLength: 6 }),
        (pattern, words) => {
          expect(topicMatches(pattern, words)).toBe(reference(pattern, words));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('handles the classic cases', () => {
    const m = (p: string, k: string) => topicMatches(topicWords(p), topicWords(k));
    expect(m('#', '')).toBe(true);
    expect(m('*', '')).toBe(false);
    expect(m('a.#', 'a')).toBe(true);
    expect(m('a.*', 'a')).toBe(false);
    expect(m('#.b.#', 'x.y.b.z')).toBe(true);
    expect(m('*.*', 'a.b.c')).toBe(false);
  });
});

describe('headers matching', () => {
  it('all (default) needs every non-x argument; any needs one; x- arguments are ignored', () => {
    expect(headersMatch({ a: 1, b: 'x' }, { a: 1, b: 'x', c: 3 })).toBe(true);
    expect(headersMatch({ a: 1, b: 'x' }, { a: 1 })).toBe(false);
    expect(headersMatch({ 'x-match': 'any', a: 1, b: 'x' }, { b: 'x' })).toBe(true);
    expect(headersMatch({ 'x-match': 'any', a: 1 }, { a: 2 })).toBe(false);
    expect(headersMatch({ 'x-note': 'n' }, {})).toBe(true);
    expect(headersMatch({ 'x-match': 'any' }, { a: 1 })).toBe(false);
    expect(headersMatch({ a: 'v' }, undefined)).toBe(false);
    expect(headersMatch({ a: 'v' }, { a: Buffer.from('v') })).toBe(true);
  });
});

describe('Deque', () => {
  it('behaves like an array used from both ends', () => {
    type Op = { kind: 'push' | 'unshift'; value: number } | { kind: 'shift' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom('push' as const, 'unshift' as const), value: fc.integer() }),
      fc.constant({ kind: 'shift' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const d = new Deque<number>(2);
        const model: number[] = [];
        for (const o of ops) {
          if (o.kind === 'push') {
            d.push(o.value);
            model.push(o.value);
          } else if (o.kind === 'unshift') {
            d.unshift(o.value);
            model.unshift(o.value);
          } else {
            expect(d.shift()).toBe(model.shift());
          }
          expect(d.length).toBe(model.length);
          expect(d.peek()).toBe(model[0]);
        }
        expect([...d]).toEqual(model);
      }),
    );
  });
});
