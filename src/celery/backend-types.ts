/**
 * Types shared by the result backend and the result classes (AsyncResult, GroupResult).
 *
 * `result.ts` imports only this module, never the backend class, so the two do not form an
 * import cycle. Meta objects keep Celery's wire keys (snake_case): they are what Python sends.
 *
 * @module
 */
import type { WaitOptions } from '../kombu/retry.js';

/**
 * A task's state and result as the backend stores and returns it (docs/wire.md §3).
 *
 * @typeParam T - The task's return type, unchecked (it is whatever the worker sent). @default unknown
 * @example
 * ```ts
 * const meta: TaskMeta<number> = { task_id: id, status: 'SUCCESS', result: 4, traceback: null, children: null };
 * ```
 */
export interface TaskMeta<T = unknown> {
  /** The task id. */
  task_id: string;
  /** A state name (see `states.ts`); custom states are allowed. */
  status: string;
  /**
   * The decoded result: the return value on SUCCESS; for FAILURE/REVOKED/RETRY the raw
   * exception dict, for a custom state its dict, null while PENDING (typed `T` for SUCCESS).
   */
  result: T;
  /** The remote traceback text, or null. @default null */
  traceback: string | null;
  /** Result tuples of the task's children, or null. @default null */
  children: unknown[] | null;
  /** `result_extended` fields (name, args, kwargs, worker, retries, queue), kept as-is. */
  [extra: string]: unknown;
}

/**
 * The parts of a Celery task request (`task.request`) the backend reads when storing.
 *
 * @example
 * ```ts
 * const request: TaskRequest = { id, correlation_id: id, children: [] };
 * ```
 */
export interface TaskRequest {
  /** The task id. */
  id?: string | undefined;
  /** The task message's correlation_id; results carry it. @default the task id */
  correlation_id?: string | null | undefined;
  /** The task message's reply_to (used by the RPC backend). */
  reply_to?: string | null | undefined;
  /** The id of the group the task belongs to. */
  group?: string | null | undefined;
  /**
   * Children as result tuples (`[[id, parent], null]` or `[group_id, [...]]`), or objects with
   * an `asTuple()` method (AsyncResult, GroupResult) which the backend calls.
   */
  children?: readonly unknown[] | null | undefined;
  /** Any other request field (task name, args, kwargs, hostname, retries, ...). */
  [extra: string]: unknown;
}

/**
 * Options of {@link ResultBackend.storeResult}.
 *
 * @example
 * ```ts
 * await backend.storeResult(id, err, 'FAILURE', { traceback: err.stack ?? null, request });
 * ```
 */
export interface StoreOptions {
  /** Traceback text. @default null */
  traceback?: string | null | undefined;
  /** The task request: gives correlation_id and children. @default undefined */
  request?: TaskRequest | undefined;
  /** Cancels the store (between retries). @default undefined */
  signal?: AbortSignal | undefined;
}

/**
 * Options of a read of what the backend holds ({@link ResultBackend.restoreGroup}; the
 * base of {@link GetMetaOptions} and {@link WaitForOptions}).
 *
 * @example
 * ```ts
 * await backend.restoreGroup(groupId, { cache: false });
 * ```
 */
export interface ReadOptions {
  /** Answer from the cache when it holds a final answer (a READY meta, a saved group). @default true */
  cache?: boolean | undefined;
  /** Cancels the read with AbortError. @default undefined */
  signal?: AbortSignal | undefined;
}

/**
 * Options of {@link ResultBackend.getTaskMeta} / `poll`.
 *
 * @example
 * ```ts
 * await backend.getTaskMeta(id, { backlogLimit: 100 });
 * ```
 */
export interface GetMetaOptions extends ReadOptions {
  /** How many queued states to fast-forward before BacklogLimitExceeded. @default 1000 */
  backlogLimit?: number | undefined;
}

/**
 * What every wait for results takes besides its deadline (ms) and signal: `waitFor`,
 * `getMany`, `AsyncResult.get`, `join`.
 *
 * @example
 * ```ts
 * await result.get({ timeout: 10_000, onInterval: () => process.stdout.write('.') });
 * ```
 */
export interface ResultWaitOptions extends WaitOptions {
  /** Consume without acks (the message is gone once delivered). @default true */
  noAck?: boolean | undefined;
  /** Called between waits: about once a second and on every non-ready state received. @default undefined */
  onInterval?: (() => void) | undefined;
}

/**
 * Options of {@link ResultBackend.waitFor}. At the `timeout` (ms) the wait rejects with a
 * TimeoutError (code `TIMEOUT`) naming the task, the time waited and the last state seen.
 *
 * @example
 * ```ts
 * await backend.waitFor(id, { timeout: 10_000, signal: ac.signal });
 * ```
 */
export interface WaitForOptions extends ResultWaitOptions, ReadOptions {
  /** Kept for Celery's signature; propagation is AsyncResult.get's job. @default true */
  propagate?: boolean | undefined;
}

/**
 * Options of {@link ResultBackend.getMany}. The `timeout` (ms) is for the whole call; the
 * TimeoutError says how many results are missing and names a few.
 *
 * @example
 * ```ts
 * for await (const [id, meta] of backend.getMany(ids, { timeout: 30_000 })) console.log(id, meta.status);
 * ```
 */
export interface GetManyOptions extends ResultWaitOptions {
  /**
   * Take the results out of their queues, as Celery's no_ack consumer does. They are still
   * acked by the broker's rules, after they are handled (once a second and when the call
   * ends), so one in flight during a connection loss is redelivered, not lost. `false`
   * leaves every message in its queue. @default true
   */
  noAck?: boolean | undefined;
  /** Called with every meta received, ready or not, before it is filtered. @default undefined */
  onMessage?: ((meta: TaskMeta) => void) | undefined;
}

/**
 * What AsyncResult / GroupResult / ResultSet need from a result backend. `AMQPBackend` and
 * `RPCBackend` implement it (through `BaseBackend`); `result.ts` depends on this interface only.
 *
 * `G` is the group object `restoreGroup` returns (GroupResult in `result.ts`).
 *
 * @example
 * ```ts
 * function ready(backend: ResultBackend, id: string) {
 *   return backend.getTaskMeta(id).then((m) => m.status === 'SUCCESS');
 * }
 * ```
 */
export interface ResultBackend<G = unknown> {
  /** True: GroupResult.joinNative may use getMany. */
  readonly supportsNativeJoin: boolean;
  /** True: results expire on the broker (x-expires). */
  readonly supportsAutoexpire: boolean;
  /** The latest state without consuming it (a cached READY meta first; PENDING when nothing). */
  getTaskMeta<T = unknown>(taskId: string, options?: GetMetaOptions): Promise<TaskMeta<T>>;
  /** Waits for a ready state; rejects with TimeoutError, AbortError, or ConnectionError once closed. */
  waitFor<T = unknown>(taskId: string, options?: WaitForOptions): Promise<TaskMeta<T>>;
  /** Yields `[taskId, meta]` as each task becomes ready, in arrival order. */
  getMany<T = unknown>(
    taskIds: Iterable<string>,
    options?: GetManyOptions,
  ): AsyncIterableIterator<[string, TaskMeta<T>]>;
  /** Publishes a state and result; resolves once the broker has it (publisher confirms). */
  storeResult<R>(taskId: string, result: R, status: string, options?: StoreOptions): Promise<R>;
  /** Persists a group's member ids. `result` is a GroupResult (with `asTuple()`) or the ids. */
  saveGroup(groupId: string, result: unknown): Promise<unknown>;
  /** The saved group, or null when none. */
  restoreGroup(groupId: string, options?: ReadOptions): Promise<G | null>;
  /** Deletes a saved group. */
  deleteGroup(groupId: string): Promise<void>;
  /** Forgets a task's result (purges its queue and the cache entry). */
  forget?(taskId: string): Promise<void>;
  /** Ends every wait and releases the backend's channels (and its own connection). */
  close?(): Promise<void>;
}
