/**
 * {@link ResultSet}: several results waited on together (Celery's `celery.result.ResultSet`).
 *
 * @module
 */
import { ArgumentError, TimeoutError } from '../errors.js';
import type { AsyncResult, GetOptions } from './async-result.js';
import type { ResultBackend, TaskMeta } from './backend-types.js';
import { TaskError, exceptionFromMeta } from './exceptions.js';
import { typedMeta } from './result-meta.js';
import { EXCEPTION_STATES, PROPAGATE_STATES, isReady } from './states.js';

/**
 * Options of {@link ResultSet.join} and {@link ResultSet.joinNative}.
 *
 * @typeParam T - The members' return type. @default unknown
 * @example
 * ```ts
 * await set.join({ timeout: 10_000, callback: (id, value) => console.log(id, value) });
 * ```
 */
export interface JoinOptions<T = unknown> extends GetOptions {
  /**
   * Called once per result as it arrives (`join`: in input order; `joinNative`: in arrival
   * order) with the task id and its value (a TaskError when not propagating a failure). An
   * exception it throws rejects the join. @default undefined
   */
  callback?: ((taskId: string, value: T | TaskError) => void) | undefined;
}

/** What `get({ propagate: false })` gives for a ready meta: the value, or the rehydrated error. */
function valueOf<T>(meta: TaskMeta): T | TaskError {
  return EXCEPTION_STATES.has(meta.status)
    ? exceptionFromMeta(meta.result, meta.traceback, meta.status)
    : typedMeta<T>(meta).result;
}

/**
 * A set of results waited on together (Celery's `ResultSet`). Not a thenable: its values
 * come from {@link get} / {@link join}.
 *
 * @typeParam T - The members' return type (unchecked). @default unknown
 * @example
 * ```ts
 * const set = new ResultSet<number>(ids.map((id) => new AsyncResult<number>(id, backend)), backend);
 * const values: number[] = await set.get({ timeout: 30_000 }); // in the order of `ids`
 * ```
 */
export class ResultSet<T = unknown> {
  /** The member results, in order. */
  readonly results: Array<AsyncResult<T>>;
  readonly #backend: ResultBackend | undefined;

  /**
   * @param results - The members.
   * @param backend - Used for native joins. @default the first member's backend
   */
  constructor(results: Iterable<AsyncResult<T>>, backend?: ResultBackend) {
    this.results = [...results];
    this.#backend = backend;
  }

  /**
   * The backend native joins use: the one given, else the first member's.
   *
   * @throws ArgumentError when neither exists (an empty set built without a backend).
   */
  get backend(): ResultBackend {
    const backend = this.#backend ?? this.results[0]?.backend;
    if (backend === undefined) throw new ArgumentError('ResultSet has no backend and no results');
    return backend;
  }

  /** Number of members. */
  get size(): number {
    return this.results.length;
  }

  /**
   * Adds a result unless one with the same id is already a member.
   *
   * @example
   * ```ts
   * set.add(new AsyncResult(id, backend));
   * ```
   */
  add(result: AsyncResult<T>): void {
    if (!this.results.some((r) => r.id === result.id)) this.results.push(result);
  }

  /**
   * Removes a member (by object or id).
   *
   * @throws ArgumentError when it is not a member (Celery raises KeyError); see {@link discard}.
   * @example
   * ```ts
   * set.remove(taskId);
   * ```
   */
  remove(result: AsyncResult<T> | string): void {
    if (!this.discard(result)) {
      const id = typeof result === 'string' ? result : result.id;
      throw new ArgumentError(`${id} is not a member of this result set`);
    }
  }

  /**
   * Removes a member (by object or id) if present.
   *
   * @returns true when something was removed.
   * @example
   * ```ts
   * set.discard(taskId); // false when absent
   * ```
   */
  discard(result: AsyncResult<T> | string): boolean {
    const id = typeof result === 'string' ? result : result.id;
    const index = this.results.findIndex((r) => r.id === id);
    if (index < 0) return false;
    this.results.splice(index, 1);
    return true;
  }

  /**
   * How many members succeeded.
   *
   * @example
   * ```ts
   * `${await set.completedCount()}/${set.size}`;
   * ```
   */
  async completedCount(): Promise<number> {
    const flags = await Promise.all(this.results.map((r) => r.successful()));
    return flags.filter(Boolean).length;
  }

  /**
   * True when every member is ready.
   *
   * @example
   * ```ts
   * if (await set.ready()) console.log(await set.get());
   * ```
   */
  async ready(): Promise<boolean> {
    return (await Promise.all(this.results.map((r) => r.ready()))).every(Boolean);
  }

  /**
   * True when every member succeeded.
   *
   * @example
   * ```ts
   * await set.successful();
   * ```
   */
  async successful(): Promise<boolean> {
    return (await Promise.all(this.results.map((r) => r.successful()))).every(Boolean);
  }

  /**
   * True when any member failed.
   *
   * @example
   * ```ts
   * await set.failed();
   * ```
   */
  async failed(): Promise<boolean> {
    return (await Promise.all(this.results.map((r) => r.failed()))).some(Boolean);
  }

  /**
   * True when any member is not ready yet.
   *
   * @example
   * ```ts
   * while (await set.waiting()) await sleep(1000);
   * ```
   */
  async waiting(): Promise<boolean> {
    return !(await this.ready());
  }

  /**
   * Waits for every member: {@link joinNative} when the backend supports it (AMQP does),
   * else {@link join}.
   *
   * @example
   * ```ts
   * const [a, b] = await set.get({ timeout: 10_000 });
   * ```
   */
  get(options?: JoinOptions<T> & { propagate?: true | undefined }): Promise<T[]>;
  get(options: JoinOptions<T>): Promise<Array<T | TaskError>>;
  get(options: JoinOptions<T> = {}): Promise<Array<T | TaskError>> {
    if (this.results.length === 0) return Promise.resolve([]);
    return this.backend.supportsNativeJoin ? this.joinNative(options) : this.join(options);
  }

  /**
   * Waits for the members one after another (`AsyncResult.get` on each), the deadline
   * covering the whole join. Resolves with the values in member order.
   *
   * @throws TimeoutError, AbortError, or the first failure in member order when propagating.
   * @example
   * ```ts
   * await set.join({ timeout: 10_000, callback: (id, value) => console.log(id, value) });
   * ```
   */
  join(options?: JoinOptions<T> & { propagate?: true | undefined }): Promise<T[]>;
  join(options: JoinOptions<T>): Promise<Array<T | TaskError>>;
  async join(options: JoinOptions<T> = {}): Promise<Array<T | TaskError>> {
    const deadline = options.timeout === undefined ? undefined : performance.now() + options.timeout;
    const values: Array<T | TaskError> = [];
    for (const result of this.results) {
      const remaining = deadline === undefined ? undefined : Math.max(0, deadline - performance.now());
      const known = result.meta !== null && isReady(result.meta.status);
      if (remaining === 0 && !known) {
        throw new TimeoutError(`The operation timed out: join reached its deadline before task ${result.id}`);
      }
      const value = await result.get({ ...options, timeout: remaining });
      options.callback?.(result.id, value);
      values.push(value);
    }
    return values;
  }

  /**
   * Waits for every member over one consumer (`backend.getMany`), which is much faster
   * than {@link join} for many tasks. Resolves with the values in member (input) order;
   * `callback` sees each as it arrives. With `propagate` (the default) the first FAILURE or
   * REVOKED to arrive rejects at once and the consumer is cancelled, as Celery raises.
   *
   * @throws TimeoutError, AbortError, TaskError, or the backend's errors.
   * @example
   * ```ts
   * const values = await group.joinNative({ timeout: 30_000, callback: (id) => bar.tick() });
   * ```
   */
  joinNative(options?: JoinOptions<T> & { propagate?: true | undefined }): Promise<T[]>;
  joinNative(options: JoinOptions<T>): Promise<Array<T | TaskError>>;
  async joinNative(options: JoinOptions<T> = {}): Promise<Array<T | TaskError>> {
    const propagate = options.propagate ?? true;
    const positions = new Map<string, number[]>();
    this.results.forEach((r, i) => {
      const at = positions.get(r.id);
      if (at === undefined) positions.set(r.id, [i]);
      else at.push(i);
    });
    const values = new Array<T | TaskError>(this.results.length);
    for await (const [taskId, meta] of this.iterNative(options)) {
      // Throwing below leaves the loop, which calls the generator's return(): that cancels
      // the backend's consumer at once instead of draining the other results.
      const at = positions.get(taskId) ?? [];
      const member = this.results[at[0] ?? -1];
      // The member's own `result` keeps one error object per task (r.result === value).
      const own = member !== undefined && member.meta === meta ? member.result : undefined;
      const value = own instanceof TaskError ? own : valueOf<T>(meta);
      if (propagate && PROPAGATE_STATES.has(meta.status)) throw value;
      options.callback?.(taskId, value);
      for (const i of at) values[i] = value;
    }
    return values;
  }

  /**
   * Yields `[taskId, meta]` for each member as it becomes ready, in arrival order; members
   * already known to be ready come first without the broker. Each member's kept meta is
   * updated. Stopping early (break/throw) cancels the consumer.
   *
   * @throws TimeoutError when the deadline passes with members still missing.
   * @example
   * ```ts
   * for await (const [id, meta] of set.iterNative({ timeout: 30_000 })) console.log(id, meta.status);
   * ```
   */
  async *iterNative(options: GetOptions = {}): AsyncGenerator<[string, TaskMeta], void, undefined> {
    const byId = new Map<string, Array<AsyncResult<T>>>();
    for (const r of this.results) {
      const list = byId.get(r.id);
      if (list === undefined) byId.set(r.id, [r]);
      else list.push(r);
    }
    const pending = new Set<string>();
    for (const [id, members] of byId) {
      const known = members.map((m) => m.meta).find((m) => m !== null && isReady(m.status));
      if (known === undefined || known === null) {
        pending.add(id);
        continue;
      }
      for (const m of members) m.setMeta(known);
      yield [id, known];
    }
    if (pending.size === 0) return;
    const iterator = this.backend.getMany([...pending], {
      timeout: options.timeout,
      noAck: options.noAck,
      onInterval: options.onInterval,
      signal: options.signal,
    });
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) break;
        const [id, meta] = next.value;
        // A ready result for an id outside the request only goes to the backend's cache.
        if (!pending.delete(id)) continue;
        for (const m of byId.get(id) ?? []) m.setMeta(meta);
        yield [id, meta];
        if (pending.size === 0) break;
      }
    } finally {
      await iterator.return?.();
    }
    if (pending.size > 0) throw new TimeoutError();
  }

  /** `<ResultSet: [id, ...]>` as Celery prints it. */
  toString(): string {
    return `<${this.constructor.name}: [${this.results.map((r) => r.id).join(', ')}]>`;
  }
}
