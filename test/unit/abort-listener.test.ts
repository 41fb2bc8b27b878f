/**
 * onAbort: one 'abort' listener per signal whatever the number of watchers, each watcher
 * called once, watchers removable one by one, nothing left on the signal afterwards.
 */
import { getEventListeners } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { onAbort } from '../../src/kombu/abort-listener.js';

describe('onAbort', () => {
  it('fans 50 watchers out from one listener and calls each once', () => {
    const controller = new AbortController();
    const calls: number[] = [];
    const stops = Array.from({ length: 50 }, (_, i) => onAbort(controller.signal, () => calls.push(i)));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    stops[7]?.();
    controller.abort();
    controller.abort();
    expect(calls).toEqual(Array.from({ length: 50 }, (_, i) => i).filter((i) => i !== 7));
    for (const stop of stops) stop(); // after the abort: harmless
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('removes its listener from the signal with the last watcher, and starts afresh after', () => {
    const { signal } = new AbortController();
    const a = onAbort(signal, () => undefined);
    const b = onAbort(signal, () => undefined);
    a();
    a(); // idempotent: b still watches
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    b();
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    const c = onAbort(signal, () => undefined);
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    c();
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('calls nothing for a signal already aborted, and one function watched twice runs twice', () => {
    const aborted = AbortSignal.abort();
    let n = 0;
    onAbort(aborted, () => (n += 1))();
    expect(getEventListeners(aborted, 'abort')).toHaveLength(0);
    const controller = new AbortController();
    const fn = (): void => void (n += 1);
    onAbort(controller.signal, fn);
    onAbort(controller.signal, fn);
    controller.abort();
    expect(n).toBe(2);
  });

  it('a watcher that throws does not stop the others; its error surfaces on a microtask', () => {
    const controller = new AbortController();
    const seen: string[] = [];
    onAbort(controller.signal, () => {
      throw new Error('boom');
    });
    onAbort(controller.signal, () => seen.push('second'));
    // Caught here rather than as a real uncaught exception, which the test runner would own.
    const queued: Array<() => void> = [];
    const spy = vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((cb) => void queued.push(cb));
    try {
      controller.abort();
    } finally {
      spy.mockRestore();
    }
    expect(seen).toEqual(['second']);
    expect(queued).toHaveLength(1);
    expect(() => queued[0]?.()).toThrow('boom');
  });

  it('any interleaving of watch, stop and abort calls each live watcher exactly once and leaves no listener', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('watch' as const), fc.nat(20), fc.constant('abort' as const)), {
          maxLength: 40,
        }),
        (ops) => {
          const controller = new AbortController();
          const stops: Array<() => void> = [];
          const live = new Set<number>();
          const called = new Map<number, number>();
          let aborted = false;
          for (const op of ops) {
            if (op === 'watch') {
              const i = stops.length;
              if (!aborted) live.add(i);
              stops.push(onAbort(controller.signal, () => called.set(i, (called.get(i) ?? 0) + 1)));
            } else if (op === 'abort') {
              if (!aborted) for (const i of live) expect(called.has(i)).toBe(false);
              controller.abort();
              aborted = true;
            } else if (op < stops.length) {
              stops[op]?.();
              if (!aborted) live.delete(op);
            }
          }
          if (aborted) for (const i of live) expect(called.get(i)).toBe(1);
          for (const [i, n] of called) expect(live.has(i) && n === 1).toBe(true);
          for (const stop of stops) stop();
          expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
        },
      ),
    );
  });
});
