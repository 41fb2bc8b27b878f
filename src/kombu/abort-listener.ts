/**
 * One 'abort' listener per AbortSignal, shared by every wait that watches it.
 *
 * A caller who passes one signal to many concurrent operations (200 waitFor calls, a batch of
 * stores) would otherwise get one listener per operation on that signal, and Node warns
 * (MaxListenersExceededWarning) past 10. The signal is the caller's object, so raising its
 * limit is not ours to do; fanning out from a single listener is.
 *
 * @module
 */

interface Fanout {
  readonly listeners: Set<{ readonly fn: () => void }>;
  readonly dispatch: () => void;
}

const fanouts = new WeakMap<AbortSignal, Fanout>();

/**
 * Calls `listener` once when `signal` aborts. Nothing is called for a signal that has already
 * aborted: check `signal.aborted` first, as with `addEventListener`.
 *
 * @param signal - The signal to watch.
 * @param listener - Called once on abort. A listener that throws does not stop the others;
 *   its error is rethrown on a microtask, as an EventTarget listener's would surface.
 * @returns A function that stops watching (idempotent); the signal's own listener goes with
 *   the last watcher.
 * @example
 * ```ts
 * const stop = onAbort(signal, () => reject(abortError(signal)));
 * try { await work; } finally { stop(); }
 * ```
 */
export function onAbort(signal: AbortSignal, listener: () => void): () => void {
  if (signal.aborted) return () => undefined;
  let fanout = fanouts.get(signal);
  if (fanout === undefined) {
    const listeners = new Set<{ readonly fn: () => void }>();
    const dispatch = (): void => {
      fanouts.delete(signal);
      const all = [...listeners];
      listeners.clear();
      for (const entry of all) {
        try {
          entry.fn();
        } catch (err) {
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    };
    fanout = { listeners, dispatch };
    fanouts.set(signal, fanout);
    signal.addEventListener('abort', dispatch, { once: true });
  }
  // An entry object of its own, so that one function watched twice is called twice.
  const entry = { fn: listener };
  const own = fanout;
  own.listeners.add(entry);
  return () => {
    if (!own.listeners.delete(entry) || own.listeners.size > 0) return;
    if (fanouts.get(signal) === own) fanouts.delete(signal);
    signal.removeEventListener('abort', own.dispatch);
  };
}
