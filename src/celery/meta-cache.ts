/**
 * The backends' result cache: READY metas only, because a ready result is final (SUCCESS,
 * FAILURE and REVOKED never change), and the states the waits in progress have seen, so a
 * wait that times out can say what it last saw.
 *
 * @module
 */
import type { TaskMeta } from './backend-types.js';
import { ResultCache } from './result-cache.js';
import { PENDING, isReady } from './states.js';

/** What a wait learns about its task while it waits: the latest state seen. */
export interface StateWatch {
  /** The latest state received for the task during the wait. @default 'PENDING' */
  readonly status: string;
  /** Stops watching (idempotent). */
  stop(): void;
}

/** A watch's mutable side. */
interface Watcher {
  status: string;
}

/**
 * A {@link ResultCache} of task metas that keeps READY metas only (a non-ready state is never
 * cached, and never replaces a ready one) and tells watchers every state it is given.
 *
 * Every meta a backend receives goes through {@link set}; only ready ones stay.
 *
 * @example
 * ```ts
 * const cache = new MetaCache(10_000);
 * const watch = cache.watch(id);
 * cache.set(id, { task_id: id, status: 'STARTED', result: null, traceback: null, children: null });
 * watch.status; // 'STARTED'
 * cache.get(id); // undefined: not ready
 * watch.stop();
 * ```
 */
export class MetaCache extends ResultCache<TaskMeta> {
  readonly #watchers = new Map<string, Watcher | Watcher[]>();

  /**
   * Notes `meta` for its watchers and keeps it when it is READY (and the cache is on).
   *
   * @example
   * ```ts
   * cache.set(meta.task_id, meta);
   * ```
   */
  override set(key: string, meta: TaskMeta): this {
    if (this.#watchers.size > 0) {
      const w = this.#watchers.get(key);
      if (w !== undefined) for (const one of Array.isArray(w) ? w : [w]) one.status = meta.status;
    }
    if (isReady(meta.status)) super.set(key, meta);
    return this;
  }

  /**
   * Watches the states given for `key` until `stop()` (the waits' "last state seen").
   *
   * @example
   * ```ts
   * const watch = cache.watch(id);
   * try { ... } finally { watch.stop(); }
   * ```
   */
  watch(key: string): StateWatch {
    const watcher: Watcher = { status: this.get(key)?.status ?? PENDING };
    const entry = this.#watchers.get(key);
    if (entry === undefined) this.#watchers.set(key, watcher);
    else if (Array.isArray(entry)) entry.push(watcher);
    else this.#watchers.set(key, [entry, watcher]);
    let stopped = false;
    return {
      get status() {
        return watcher.status;
      },
      stop: () => {
        if (stopped) return;
        stopped = true;
        this.#unwatch(key, watcher);
      },
    };
  }

  #unwatch(key: string, watcher: Watcher): void {
    const entry = this.#watchers.get(key);
    if (entry === watcher) this.#watchers.delete(key);
    else if (Array.isArray(entry)) {
      const i = entry.indexOf(watcher);
      if (i >= 0) entry.splice(i, 1);
      if (entry.length === 1 && entry[0] !== undefined) this.#watchers.set(key, entry[0]);
      else if (entry.length === 0) this.#watchers.delete(key);
    }
  }
}
