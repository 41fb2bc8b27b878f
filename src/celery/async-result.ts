/**
 * {@link AsyncResult}: one task's result (Celery's `celery.result.AsyncResult`), and the
 * result tuple types the wire uses for `children` (docs/wire.md §3).
 *
 * Depends on the {@link ResultBackend} interface only, never on the backend class.
 *
 * @module
 */
import { ArgumentError, CeleryAmqpError } from '../errors.js';
import type { ResultBackend, ResultWaitOptions, TaskMeta } from './backend-types.js';
import { typedMeta } from './result-meta.js';
import { parseIsoDate } from './task-message.js';
import type { TaskError } from './exceptions.js';
import { exceptionFromMeta } from './exceptions.js';
// A cycle with group-result.ts, but a safe one: resultFromTuple is only called lazily (from
// the `children` getter), never while the modules are being evaluated.
import { resultFromTuple } from './group-result.js';
import type { GroupResult } from './group-result.js';
import { EXCEPTION_STATES, FAILURE, PENDING, PROPAGATE_STATES, SUCCESS, isReady } from './states.js';
import type { State } from './states.js';

/**
 * An AsyncResult as a tuple: `[[id, parentTuple | null], null]` (docs/wire.md §3). Celery 3.1
 * also sent a bare id for the first element; {@link resultFromTuple} accepts that too.
 */
export type AsyncResultTuple = [[string, ResultTuple | null], null];

/** A GroupResult as a tuple: `[group_id, [child tuples...]]` (Celery 3.1's form, docs/wire.md §3). */
export type GroupResultTuple = [string, ResultTuple[]];

/** Either result tuple. */
export type ResultTuple = AsyncResultTuple | GroupResultTuple;

/**
 * Options of {@link AsyncResult.get}. At the `timeout` (ms) it rejects with a TimeoutError
 * (code `TIMEOUT`) naming the task, the wait and the last state seen.
 */
export interface GetOptions extends ResultWaitOptions {
  /** Reject with the task's error on FAILURE/REVOKED; when false the error is the resolved value. @default true */
  propagate?: boolean | undefined;
  /**
   * Kept for Celery's signature: polling backends sleep this long (ms) between polls. The
   * AMQP and RPC backends consume instead, so it is not used there. @default 500
   */
  interval?: number | undefined;
}

/** Options of the {@link AsyncResult} constructor. */
export interface AsyncResultOptions {
  /** The result of the task this one was chained after. @default null */
  parent?: AsyncResult | GroupResult | null | undefined;
}

function unsupported(what: string): CeleryAmqpError {
  return new CeleryAmqpError(`${what} is not supported by this result backend`, 'UNSUPPORTED');
}

/**
 * Checks a task or group id: a non-empty string.
 *
 * @throws ArgumentError otherwise.
 * @example
 * ```ts
 * requireResultId(id, 'task id');
 * ```
 */
export function requireResultId(id: unknown, what: string): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new ArgumentError(`${what} must be a non-empty string, got ${typeof id}`);
  }
  return id;
}

/**
 * A pending or finished task's result (Celery's `AsyncResult`).
 *
 * The state getters ({@link state}, {@link result}, {@link traceback}, {@link children},
 * {@link info}) are synchronous and report the last meta this object has seen; the methods
 * that must ask the backend ({@link get}, {@link ready}, {@link successful}, {@link failed},
 * {@link refresh}) return promises. Once a ready state has been seen it is kept: the AMQP
 * backend's waits consume the message, so asking the broker again would say PENDING.
 *
 * **Not a thenable.** An AsyncResult is a handle, never awaited itself: `await result` gives
 * the handle back, and it can be returned from an async function or passed through
 * `Promise.all` as any object. Its value comes from {@link get}, which takes a deadline.
 *
 * @typeParam T - The task's return type (unchecked: it is whatever the worker sent). @default unknown
 * @example
 * ```ts
 * const result = new AsyncResult<number>(taskId, backend);
 * const sum: number = await result.get({ timeout: 10_000 });
 * result.state; // 'SUCCESS'
 * ```
 */
export class AsyncResult<T = unknown> {
  /** The task id. */
  readonly id: string;
  /** The backend that stores the result. */
  readonly backend: ResultBackend;
  /** The result of the task this one was chained after, or null. @default null */
  parent: AsyncResult | GroupResult | null;
  #meta: TaskMeta | null = null;
  #error: TaskError | undefined;

  /**
   * @param id - The task id.
   * @param backend - Where its result is stored.
   * @param options - `parent`. @default {}
   * @throws ArgumentError when `id` is empty.
   */
  constructor(id: string, backend: ResultBackend, options: AsyncResultOptions = {}) {
    this.id = requireResultId(id, 'task id');
    this.backend = backend;
    this.parent = options.parent ?? null;
  }

  /** The last meta seen, or null before the first backend call. @default null */
  get meta(): TaskMeta | null {
    return this.#meta;
  }

  /** The last known state; PENDING until a meta has been seen. @default 'PENDING' */
  get state(): State {
    return this.#meta?.status ?? PENDING;
  }

  /** Alias of {@link state}, as in Celery. */
  get status(): State {
    return this.state;
  }

  /**
   * The last known result: the return value on SUCCESS, the rehydrated {@link TaskError} for
   * FAILURE/REVOKED/RETRY, a custom state's dict as is, null while pending. @default null
   */
  get result(): unknown {
    const meta = this.#meta;
    if (meta === null) return null;
    // Memoized so that `r.result === r.result` for an error, as with a Python attribute.
    if (EXCEPTION_STATES.has(meta.status)) return this.#taskError(meta);
    return meta.result;
  }

  /** Alias of {@link result}: for custom states such as PROGRESS it is the task's meta dict. */
  get info(): unknown {
    return this.result;
  }

  /** The worker's traceback text for a failure, else null. @default null */
  get traceback(): string | null {
    return this.#meta?.traceback ?? null;
  }

  /**
   * The task's children as result objects (rebuilt from their tuples), or null when the
   * worker sent none. @default null
   */
  get children(): Array<AsyncResult | GroupResult> | null {
    const raw = this.#meta?.children;
    if (!Array.isArray(raw)) return null;
    return raw.map((child) => resultFromTuple(child, this.backend));
  }

  /**
   * The task's name, from a result stored with `result_extended` (Celery's `name`); null
   * otherwise or before a meta was seen. @default null
   */
  get name(): string | null {
    return this.#extra('name', (v): v is string => typeof v === 'string');
  }

  /** The task's positional arguments (`result_extended`), else null. @default null */
  get args(): unknown[] | null {
    return this.#extra('args', (v): v is unknown[] => Array.isArray(v));
  }

  /** The task's keyword arguments (`result_extended`), else null. @default null */
  get kwargs(): Record<string, unknown> | null {
    return this.#extra(
      'kwargs',
      (v): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v),
    );
  }

  /** The worker (node name) that ran the task (`result_extended`), else null. @default null */
  get worker(): string | null {
    return this.#extra('worker', (v): v is string => typeof v === 'string');
  }

  /** How many times the task was retried (`result_extended`), else null. @default null */
  get retries(): number | null {
    return this.#extra('retries', (v): v is number => typeof v === 'number');
  }

  /** The queue (routing key) the task came through (`result_extended`), else null. @default null */
  get queue(): string | null {
    return this.#extra('queue', (v): v is string => typeof v === 'string');
  }

  /**
   * When the task finished (Celery's `date_done`, UTC; a date without an offset is read as
   * UTC), when the result carries it; else null. @default null
   *
   * @throws DecodeError when the stored date is not ISO 8601 (as Python's `date_done` raises).
   */
  get dateDone(): Date | null {
    const text = this.#extra('date_done', (v): v is string => typeof v === 'string');
    return text === null ? null : new Date(parseIsoDate(text));
  }

  #extra<V>(key: string, is: (v: unknown) => v is V): V | null {
    const v = this.#meta?.[key];
    return is(v) ? v : null;
  }

  /**
   * Records a meta obtained elsewhere (by a join, or the caller). A ready meta is never
   * replaced by a not-ready one: once consumed, the broker no longer has the result.
   *
   * @example
   * ```ts
   * result.setMeta(await backend.waitFor(result.id));
   * ```
   */
  setMeta(meta: TaskMeta): void {
    if (this.#meta !== null && isReady(this.#meta.status) && !isReady(meta.status)) return;
    if (this.#meta !== meta) this.#error = undefined;
    this.#meta = meta;
  }

  /**
   * The task's meta: the kept one when it is ready, else the backend's latest
   * (`getTaskMeta`, which does not consume it).
   *
   * @param options - `signal` cancels the poll. @default {}
   * @example
   * ```ts
   * const meta = await result.refresh();
   * if (meta.status === 'PROGRESS') console.log(meta.result);
   * ```
   */
  async refresh(options: { signal?: AbortSignal | undefined } = {}): Promise<TaskMeta> {
    const kept = this.#meta;
    if (kept !== null && isReady(kept.status)) return kept;
    const meta = await this.backend.getTaskMeta(
      this.id,
      options.signal === undefined ? {} : { signal: options.signal },
    );
    this.setMeta(meta);
    return this.#meta ?? meta;
  }

  /**
   * True when the task has finished (SUCCESS, FAILURE or REVOKED). Asks the backend unless
   * a ready state was already seen.
   *
   * @example
   * ```ts
   * if (await result.ready()) console.log(result.result);
   * ```
   */
  async ready(): Promise<boolean> {
    return isReady((await this.refresh()).status);
  }

  /**
   * True when the task succeeded.
   *
   * @example
   * ```ts
   * await result.successful(); // false while pending
   * ```
   */
  async successful(): Promise<boolean> {
    return (await this.refresh()).status === SUCCESS;
  }

  /**
   * True when the task failed (FAILURE; a revoked task is not "failed", as in Celery).
   *
   * @example
   * ```ts
   * if (await result.failed()) console.error(result.traceback);
   * ```
   */
  async failed(): Promise<boolean> {
    return (await this.refresh()).status === FAILURE;
  }

  /**
   * Throws the task's error when the last known state is FAILURE or REVOKED (Celery's
   * `maybe_throw`); does nothing otherwise.
   *
   * @throws {@link TaskError} / {@link TaskRevokedError} with the Python type, args and traceback.
   * @example
   * ```ts
   * await result.refresh();
   * result.maybeThrow();
   * ```
   */
  maybeThrow(): void {
    const meta = this.#meta;
    if (meta !== null && PROPAGATE_STATES.has(meta.status)) throw this.result;
  }

  /**
   * Waits until the task is ready and resolves with its return value (Celery's `get`).
   * On FAILURE/REVOKED it rejects with the rehydrated {@link TaskError} (keeping the Python
   * type, module, args and traceback) unless `propagate` is false, when that error is the
   * resolved value instead. A ready state seen before is answered without the broker.
   *
   * @param options - `timeout` (ms), `propagate` (default true), `signal`, `onInterval`. @default {}
   * @throws TimeoutError at the deadline, AbortError on abort, TaskError on failure, and the
   *   backend's errors (DecodeError, ChannelError...) as they are.
   * @example
   * ```ts
   * try {
   *   const value = await result.get({ timeout: 30_000 });
   * } catch (err) {
   *   if (err instanceof TaskError) console.error(err.excType, err.excArgs, err.traceback);
   * }
   * ```
   */
  get(options?: GetOptions & { propagate?: true | undefined }): Promise<T>;
  get(options: GetOptions): Promise<T | TaskError>;
  async get(options: GetOptions = {}): Promise<T | TaskError> {
    const propagate = options.propagate ?? true;
    let meta = this.#meta;
    if (meta === null || !isReady(meta.status)) {
      meta = await this.backend.waitFor(this.id, {
        timeout: options.timeout,
        propagate,
        noAck: options.noAck,
        onInterval: options.onInterval,
        signal: options.signal,
      });
      this.setMeta(meta);
    }
    if (EXCEPTION_STATES.has(meta.status)) {
      const err = this.#taskError(meta);
      if (propagate && PROPAGATE_STATES.has(meta.status)) throw err;
      return err;
    }
    return typedMeta<T>(meta).result;
  }

  /** The rehydrated error of an exception state, one object per meta (`r.result === r.result`). */
  #taskError(meta: TaskMeta): TaskError {
    this.#error ??= exceptionFromMeta(meta.result, meta.traceback, meta.status);
    return this.#error;
  }

  /**
   * Alias of {@link get} (Celery's `wait`).
   *
   * @example
   * ```ts
   * await result.wait({ timeout: 5000 });
   * ```
   */
  wait(options?: GetOptions & { propagate?: true | undefined }): Promise<T>;
  wait(options: GetOptions): Promise<T | TaskError>;
  wait(options: GetOptions = {}): Promise<T | TaskError> {
    return this.get(options);
  }

  /**
   * Forgets the result: the backend drops it (for AMQP: purges the task's queue) and this
   * object forgets the meta it kept.
   *
   * @throws CeleryAmqpError with code UNSUPPORTED when the backend cannot forget.
   * @example
   * ```ts
   * await result.forget();
   * ```
   */
  async forget(): Promise<void> {
    if (typeof this.backend.forget !== 'function') throw unsupported('forget');
    await this.backend.forget(this.id);
    this.#meta = null;
    this.#error = undefined;
  }

  /**
   * The result tuple `[[id, parentTuple | null], null]` that `children` carry on the wire.
   *
   * @example
   * ```ts
   * new AsyncResult('a', backend).asTuple(); // [['a', null], null]
   * ```
   */
  asTuple(): AsyncResultTuple {
    return [[this.id, this.parent === null ? null : this.parent.asTuple()], null];
  }

  /**
   * JSON form: the result tuple, so `JSON.stringify({ children: [r] })` is wire-ready.
   *
   * @example
   * ```ts
   * JSON.stringify(result); // '[["a",null],null]'
   * ```
   */
  toJSON(): AsyncResultTuple {
    return this.asTuple();
  }

  /** `<AsyncResult: id>` as Celery prints it. */
  toString(): string {
    return `<AsyncResult: ${this.id}>`;
  }
}
