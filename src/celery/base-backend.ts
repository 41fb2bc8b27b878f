/**
 * {@link BaseBackend}: what every result backend shares, as Celery's `BaseBackend` holds it
 * under its AMQP and RPC backends. Option and settings validation, encoding results, the
 * store on top of one publish, every `markAs*`, the result cache, the waits (one deadline
 * mechanism: WaitControl), `close()` and the store retry policy live here; a backend adds
 * only what differs on the wire: where a result goes, what it declares, how it receives.
 *
 * @module
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { ArgumentError, CeleryAmqpError, ConnectionError, TimeoutError } from '../errors.js';
import { Connection } from '../kombu/connection.js';
import { resolveDecodeLimits } from '../kombu/decode-limits.js';
import type { DecodeLimits } from '../kombu/decode-limits.js';
import type { RetryPolicy } from '../kombu/retry.js';
import { abortError } from '../kombu/retry.js';
import { prepareAcceptContent } from '../kombu/serialization.js';
import { consoleLogger, reportError } from '../logger.js';
import type { Logger } from '../logger.js';
import { resolveBrokerUrl } from '../transport/url.js';
import type {
  GetManyOptions,
  GetMetaOptions,
  ReadOptions,
  ResultBackend,
  StoreOptions,
  TaskMeta,
  TaskRequest,
  WaitForOptions,
} from './backend-types.js';
import { DEFAULT_STORE_RETRY_POLICY } from './backend-options.js';
import type { BackendCommonOptions } from './backend-options.js';
import { TaskRevokedError } from './exceptions.js';
import type { GroupResult } from './group-result.js';
import { MetaCache } from './meta-cache.js';
import { checkId, failureOptions, pendingMeta, resultBody, typedMeta } from './result-meta.js';
import type { ExtendedLayout } from './result-meta.js';
import { expiresToMs, resolveSettings } from './settings.js';
import type { CelerySettings, ResolvedSettings } from './settings.js';
import { FAILURE, PENDING, RETRY, REVOKED, STARTED, SUCCESS, isReady } from './states.js';
import { WaitControl } from './wait-control.js';
import type { WaitControlOptions } from './wait-control.js';

/**
 * Events of a result backend.
 *
 * @example
 * ```ts
 * backend.on('error', (err) => log.warn(err.message));
 * ```
 */
export interface BackendEvents {
  /**
   * An error no call can reject with: a reply or result message that had to be dropped
   * (undecodable, not a result), a failed queue cleanup, an error of the connection the
   * backend opened itself. Without a listener it goes to the `logger` option instead.
   */
  error: [error: Error];
}

/** The defaults a backend class gives the base. */
export interface BackendDefaults {
  /** Durable entities and delivery_mode 2 unless an option or setting says otherwise. */
  readonly persistent: boolean;
  /** How this backend lays out a result_extended body (Celery's code for it). */
  readonly extendedLayout: ExtendedLayout;
}

/**
 * What the waits and getMany hand a backend's receiving side.
 *
 * @example
 * ```ts
 * protected receiveMany(ids, { signal, noAck, onMessage }) { ... }
 * ```
 */
export interface ReceiveManyOptions {
  /** Aborted when the call ends (deadline, caller's signal, close); the reason is the error. */
  readonly signal: AbortSignal;
  /** Take the results out of their queues. */
  readonly noAck: boolean;
  /** Called with every meta received, ready or not. */
  readonly onMessage: (meta: TaskMeta) => void;
}

/** How many missing ids a getMany timeout names. */
const NAMED_MISSING = 3;

/**
 * The error every call on a closed backend rejects with, and every wait pending when it
 * closes: a ConnectionError with code `CONNECTION_CLOSED`, not recoverable (a retry cannot
 * reopen it). A caller's own AbortSignal gives AbortError instead, so the two stay apart.
 */
function closedError(): ConnectionError {
  return new ConnectionError('The result backend is closed', {
    code: 'CONNECTION_CLOSED',
    recoverable: false,
  });
}

/** A retry policy merged over the defaults; undefined fields keep the default. */
function mergeRetryPolicy(policy: RetryPolicy | undefined): Readonly<Required<RetryPolicy>> {
  const merged = { ...DEFAULT_STORE_RETRY_POLICY };
  for (const key of ['maxRetries', 'intervalStart', 'intervalStep', 'intervalMax'] as const) {
    const value = policy?.[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ArgumentError(
        `retryPolicy.${key} must be a number >= 0 (ms for intervals), got ${String(value)}`,
      );
    }
    merged[key] = value;
  }
  return Object.freeze(merged);
}

/** `result_persistent` when the settings give it under either name, else undefined. */
function persistentSetting(settings: Partial<CelerySettings> | undefined): boolean | undefined {
  return settings?.result_persistent ?? settings?.CELERY_RESULT_PERSISTENT;
}

/**
 * The base of the result backends (Celery's `BaseBackend`).
 *
 * Shared behaviour, the same on every backend and transport:
 * - **Ready results are final.** READY metas are kept in {@link cache} (bounded, 10,000 by
 *   default; `cacheMax: -1` turns it off as in Celery 4.x), so every read after the first in
 *   this process (waitFor, getTaskMeta, any AsyncResult for the id) returns the result, even
 *   once the first read consumed its message.
 * - **Waits** take a timeout (ms) and an AbortSignal. A timeout rejects with a TimeoutError
 *   (code `TIMEOUT`) naming the task, the time waited and the last state seen; the caller's
 *   signal with AbortError.
 * - **close()** rejects every pending wait, and every later call, with a ConnectionError of
 *   code `CONNECTION_CLOSED` (not recoverable).
 * - **Stores** are retried on connection errors per {@link retryPolicy}, merged over
 *   {@link DEFAULT_STORE_RETRY_POLICY}.
 * - **Errors nobody can receive** (a dropped reply, a failed cleanup) are emitted as
 *   `'error'`, or written to the `logger` when nobody listens.
 * - **Decoding is bounded** by {@link decodeLimits}: a result crossing one rejects the call
 *   reading it (a wait at once, not at its timeout) with a DecodeLimitError naming the task
 *   and the limit; what happens to the message is the backend's (see each).
 *
 * @example
 * ```ts
 * const backend: BaseBackend = new AMQPBackend({ connection: 'amqp://guest:guest@127.0.0.1:5672//' });
 * backend.on('error', (err) => console.warn(err.message));
 * await backend.markAsDone(id, 42);
 * (await backend.waitFor<number>(id, { timeout: 5000 })).result; // 42
 * await backend.close();
 * ```
 */
export abstract class BaseBackend extends EventEmitter<BackendEvents> implements ResultBackend<GroupResult> {
  /** True: GroupResult.joinNative may use getMany. */
  readonly supportsNativeJoin = true;
  /** True: results expire on the broker (x-expires). */
  readonly supportsAutoexpire = true;
  /** The connection. */
  readonly connection: Connection;
  /** Durable entities (AMQPBackend) and delivery_mode 2. */
  readonly persistent: boolean;
  /** 2 when persistent, else 1. */
  readonly deliveryMode: 1 | 2;
  /** Result serializer. @default 'json' */
  readonly serializer: string;
  /** Accepted serializer names (always including the serializer). */
  readonly accept: readonly string[];
  /** Accepted content types. */
  readonly acceptTypes: ReadonlySet<string>;
  /** Compression mime or null. @default null */
  readonly compression: string | null;
  /** Result queue `x-expires` in seconds, or null for none. @default 86400 */
  readonly expires: number | null;
  /** Publisher confirms. @default true */
  readonly confirmPublish: boolean;
  /** Results carry the request's fields (result_extended). @default false */
  readonly extended: boolean;
  /** Store retry policy (ms), merged over {@link DEFAULT_STORE_RETRY_POLICY}. */
  readonly retryPolicy: Readonly<Required<RetryPolicy>>;
  /** The `maxBodyBytes` option (decodeLimits.maxDecodedBytes when given). @default undefined */
  readonly maxBodyBytes: number | undefined;
  /**
   * The limits every result read is decoded under, and every result stored is held to
   * (the `decodeLimits` option over `DEFAULT_DECODE_LIMITS`).
   */
  readonly decodeLimits: Readonly<DecodeLimits>;
  /** The result cache: READY metas (result_cache_max). @default 10000 entries */
  readonly cache: MetaCache;
  /** Where unreceived errors go when nobody listens for 'error'. @default consoleLogger */
  readonly logger: Logger;
  /** `x-expires` in ms, or null. */
  protected readonly expiresMs: number | null;
  /** The Celery settings given, resolved (the options above win over them). */
  protected readonly settings: ResolvedSettings;

  readonly #ownsConnection: boolean;
  readonly #extendedLayout: ExtendedLayout;
  readonly #closing = new AbortController();
  #closed: Promise<void> | undefined;

  /**
   * @param options - Connection, settings and overrides.
   * @param defaults - The backend class's defaults.
   * @throws ArgumentError for bad settings or options (an `expires` that is not seconds or
   *   null, a negative retry interval, a bad cache size, ...).
   */
  protected constructor(options: BackendCommonOptions, defaults: BackendDefaults) {
    super();
    const s = resolveSettings(options.settings ?? {});
    this.settings = s;
    // Every wait in flight listens on the closing signal (and removes its listener when it
    // ends), so 11 concurrent waits are normal, not the leak Node's warning assumes.
    setMaxListeners(0, this.#closing.signal);
    this.logger = options.logger ?? consoleLogger;
    const conn = options.connection;
    this.#ownsConnection = !(conn instanceof Connection);
    this.connection = conn instanceof Connection ? conn : new Connection(resolveBrokerUrl(conn));
    if (this.#ownsConnection) {
      // Nobody else holds this connection: its unreceived errors are the backend's to report.
      this.connection.on('error', (err) => this.reportError(err));
    }
    this.persistent = options.persistent ?? persistentSetting(options.settings) ?? defaults.persistent;
    this.deliveryMode = this.persistent ? 2 : 1;
    this.serializer = options.serializer ?? s.serializer;
    const accept = [...(options.accept ?? s.accept)];
    if (!accept.includes(this.serializer)) accept.push(this.serializer);
    this.accept = Object.freeze(accept);
    this.acceptTypes = prepareAcceptContent(accept);
    this.compression = options.compression === undefined ? s.compression : options.compression;
    this.expiresMs = options.expires === undefined ? s.expiresMs : expiresToMs(options.expires, 'expires');
    this.expires = this.expiresMs === null ? null : this.expiresMs / 1000;
    this.confirmPublish = options.confirmPublish ?? true;
    const extended = options.extended ?? s.extended;
    if (typeof extended !== 'boolean') {
      throw new ArgumentError(`extended must be a boolean, got ${String(extended)}`);
    }
    this.extended = extended;
    this.#extendedLayout = defaults.extendedLayout;
    this.retryPolicy = mergeRetryPolicy(options.retryPolicy);
    const maxBytes = options.maxBodyBytes;
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1)) {
      throw new ArgumentError(`maxBodyBytes must be a positive integer, got ${String(maxBytes)}`);
    }
    this.maxBodyBytes = maxBytes;
    this.decodeLimits = resolveDecodeLimits(
      maxBytes === undefined ? options.decodeLimits : { ...options.decodeLimits, maxDecodedBytes: maxBytes },
    );
    this.cache = new MetaCache(options.cacheMax ?? s.cacheMax);
  }

  /** The backend's URL scheme as Celery writes it in `result_backend` (`'rpc://'`, `'amqp://'`). */
  abstract asUri(): string;

  /**
   * Where a result goes: `[routingKey, correlationId]` (Celery's `destination_for`); a null
   * routing key stores nothing (an rpc:// request without reply_to).
   */
  abstract destinationFor(taskId: string, request?: TaskRequest): [string | null, string];

  /** Publishes one encoded result (one attempt; the base retries it per the policy). */
  protected abstract publish(
    body: TaskMeta,
    routingKey: string,
    correlationId: string,
    signal: AbortSignal | undefined,
  ): Promise<void>;

  /** The latest state the broker side holds for the task without consuming it, or null. */
  protected abstract fetchMeta(taskId: string, options: GetMetaOptions): Promise<TaskMeta | null>;

  /**
   * Receives the task's first READY state (non-ready ones go through `cache.set` and
   * `ctl.interval()`); the base has checked the cache and owns `ctl`.
   */
  protected abstract receiveReady(
    taskId: string,
    ctl: WaitControl,
    options: WaitForOptions,
  ): Promise<TaskMeta>;

  /**
   * Yields `[taskId, meta]` for READY states of `taskIds`, in arrival order, until the
   * signal aborts or every id came; may yield ids outside the list (the base filters them).
   */
  protected abstract receiveMany(
    taskIds: readonly string[],
    options: ReceiveManyOptions,
  ): AsyncIterator<[string, TaskMeta]>;

  /** Drops what the broker side holds for the task (the cache entry is gone already). */
  protected abstract forgetResult(taskId: string): Promise<void>;

  /** Releases the backend's channels and consumers (the connection is the base's). */
  protected abstract closeResources(): Promise<void>;

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Aborted, with the closed error as reason, when the backend closes (ends every wait). */
  get closingSignal(): AbortSignal {
    return this.#closing.signal;
  }

  /** Throws the closed error once close() was called. */
  protected assertOpen(): void {
    if (this.#closed !== undefined) throw closedError();
  }

  /** Hands an error nobody can receive to the 'error' listeners, else the logger. */
  protected reportError(error: unknown): void {
    const err = error instanceof Error ? error : new CeleryAmqpError(String(error), 'CONNECTION_CLOSED');
    reportError(this, err, this.logger, this.constructor.name);
  }

  /**
   * A WaitControl for one wait: its deadline, the caller's signal and this backend's closing.
   *
   * @example
   * ```ts
   * const ctl = this.waitControl(options, () => new TimeoutError());
   * try { return await ctl.race(work()); } finally { ctl.dispose(); }
   * ```
   */
  protected waitControl(
    options: Pick<WaitControlOptions, 'timeout' | 'signal' | 'onInterval'>,
    timeoutError: () => Error,
  ): WaitControl {
    return new WaitControl(
      { timeout: options.timeout, signal: options.signal, onInterval: options.onInterval, timeoutError },
      this.#closing.signal,
    );
  }

  /**
   * Celery's hook before a task is sent (`on_task_call`): RPCBackend declares its reply queue
   * and starts its consumer so no reply is missed; nothing for AMQPBackend.
   *
   * @example
   * ```ts
   * await backend.onTaskCall({ signal });
   * ```
   */
  onTaskCall(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(closedError());
    if (options.signal?.aborted === true) return Promise.reject(abortError(options.signal));
    return Promise.resolve();
  }

  /**
   * Publishes a state and result (Celery's `store_result`). Resolves with `result` once the
   * broker has the message (publisher confirms). Connection errors are retried per
   * {@link retryPolicy} (reconnecting first); a refused declaration (406) rejects with the
   * typed ChannelError.
   *
   * @throws ArgumentError for an empty task id or status; ConnectionError once closed.
   * @example
   * ```ts
   * await backend.storeResult(id, { sum: 3 }, 'SUCCESS', { request });
   * ```
   */
  async storeResult<R>(taskId: string, result: R, status: string, options: StoreOptions = {}): Promise<R> {
    checkId(taskId);
    if (typeof status !== 'string' || status === '') {
      throw new ArgumentError(`status must be a non-empty string, got ${typeof status}`);
    }
    this.assertOpen();
    const [routingKey, correlationId] = this.destinationFor(taskId, options.request);
    if (routingKey === null || routingKey === '') return result;
    const layout = this.extended ? this.#extendedLayout : null;
    const body = resultBody(taskId, result, status, options.traceback ?? null, options.request, layout);
    const signal = options.signal;
    await this.connection.ensure(
      () =>
        this.#closed !== undefined
          ? Promise.reject(closedError())
          : this.publish(body, routingKey, correlationId, signal),
      signal === undefined ? this.retryPolicy : Object.assign({}, this.retryPolicy, { signal }),
    );
    return result;
  }

  /**
   * Stores SUCCESS (Celery's `mark_as_done`).
   *
   * @param options - `request` (correlation_id, reply_to, children), `signal`. @default {}
   * @example
   * ```ts
   * await backend.markAsDone(id, 42, { request });
   * ```
   */
  markAsDone<R>(taskId: string, result: R, options: StoreOptions = {}): Promise<R> {
    return this.storeResult(taskId, result, SUCCESS, options);
  }

  /**
   * Stores FAILURE with the error's exception dict (Celery's `mark_as_failure`). The
   * traceback: `options.traceback`, else the error's stack (`null` stores none).
   *
   * @example
   * ```ts
   * await backend.markAsFailure(id, new TypeError('bad'), { request, traceback: 'Traceback ...' });
   * ```
   */
  async markAsFailure(taskId: string, error: unknown, options: StoreOptions = {}): Promise<void> {
    await this.storeResult(taskId, error, FAILURE, failureOptions(error, options));
  }

  /**
   * Stores RETRY with the error that caused the retry (Celery's `mark_as_retry`); the same
   * traceback rule as {@link markAsFailure}.
   *
   * @example
   * ```ts
   * await backend.markAsRetry(id, new Error('try again'), { request });
   * ```
   */
  async markAsRetry(taskId: string, error: unknown, options: StoreOptions = {}): Promise<void> {
    await this.storeResult(taskId, error, RETRY, failureOptions(error, options));
  }

  /**
   * Stores REVOKED with `TaskRevokedError(reason)` (Celery's `mark_as_revoked`); no
   * traceback unless `options.traceback` gives one (nothing was raised).
   *
   * @param reason - Why, e.g. `'expired'`. @default ''
   * @example
   * ```ts
   * await backend.markAsRevoked(id, 'expired', { request });
   * ```
   */
  async markAsRevoked(taskId: string, reason = '', options: StoreOptions = {}): Promise<void> {
    const error = new TaskRevokedError({ excArgs: [reason] });
    await this.storeResult(
      taskId,
      error,
      REVOKED,
      Object.assign({}, options, { traceback: options.traceback ?? null }),
    );
  }

  /**
   * Stores STARTED with `{pid, hostname}`-like meta (Celery's `mark_as_started`).
   *
   * @param meta - The STARTED payload. @default {}
   * @param options - `request` (correlation_id; on rpc:// the reply_to), `signal`. @default {}
   * @example
   * ```ts
   * await backend.markAsStarted(id, { pid: process.pid, hostname: 'node' }, { request });
   * ```
   */
  async markAsStarted(taskId: string, meta: unknown = {}, options: StoreOptions = {}): Promise<void> {
    await this.storeResult(taskId, meta, STARTED, options);
  }

  /**
   * The latest state of a task without consuming it (Celery's `get_task_meta`): a cached
   * READY meta (final), else what the broker side holds, else PENDING.
   *
   * @throws BacklogLimitExceeded (AMQPBackend) past `backlogLimit` messages; DecodeError for
   *   a bad message (left in its queue); ConnectionError once closed.
   * @example
   * ```ts
   * (await backend.getTaskMeta(id)).status; // 'PENDING' | 'STARTED' | 'SUCCESS' | ...
   * ```
   */
  async getTaskMeta<T = unknown>(taskId: string, options: GetMetaOptions = {}): Promise<TaskMeta<T>> {
    const cached = this.#cached<T>(taskId, options);
    if (cached !== undefined) return cached;
    this.assertOpen();
    if (options.signal?.aborted === true) throw abortError(options.signal);
    const meta = await this.fetchMeta(taskId, options);
    if (meta === null) return typedMeta(pendingMeta(taskId));
    this.cache.set(taskId, meta);
    return typedMeta(meta);
  }

  /** Checks the id, then the cached ready meta of the task unless `cache: false` (the reads' first step). */
  #cached<T>(taskId: string, options: { cache?: boolean | undefined }): TaskMeta<T> | undefined {
    checkId(taskId);
    if (!(options.cache ?? true)) return undefined;
    const cached = this.cache.get(taskId);
    return cached === undefined ? undefined : typedMeta(cached);
  }

  /**
   * Alias of {@link getTaskMeta} (Celery's `poll`).
   *
   * @example
   * ```ts
   * await backend.poll(id);
   * ```
   */
  poll<T = unknown>(taskId: string, options: GetMetaOptions = {}): Promise<TaskMeta<T>> {
    return this.getTaskMeta<T>(taskId, options);
  }

  /**
   * Waits for a READY state (Celery's `wait_for`): a cached ready meta first, else what the
   * backend receives. Non-ready states (STARTED, RETRY, custom) call `onInterval` and never
   * resolve the wait. Returns the meta: raising a FAILURE is AsyncResult.get's job.
   *
   * @throws TimeoutError at the deadline (naming the task, the wait and the last state seen);
   *   AbortError on the caller's signal; ConnectionError (`CONNECTION_CLOSED`) when the backend
   *   closes; DecodeError for a bad message (left in its queue).
   * @example
   * ```ts
   * const meta = await backend.waitFor<number>(id, { timeout: 10_000 });
   * ```
   */
  async waitFor<T = unknown>(taskId: string, options: WaitForOptions = {}): Promise<TaskMeta<T>> {
    const cached = this.#cached<T>(taskId, options);
    if (cached !== undefined) return cached;
    this.assertOpen();
    const watch = this.cache.watch(taskId);
    const ctl = this.waitControl(options, () =>
      this.#waitTimeout(taskId, options.timeout ?? 0, watch.status),
    );
    try {
      const meta = await ctl.race(this.receiveReady(taskId, ctl, options));
      this.cache.set(taskId, meta);
      return typedMeta(meta);
    } finally {
      ctl.dispose();
      watch.stop();
    }
  }

  #waitTimeout(taskId: string, ms: number, status: string): TimeoutError {
    if (status === PENDING) {
      return new TimeoutError(
        `The operation timed out: no result for task ${taskId} after ${ms} ms (state PENDING: nothing ` +
          `arrived). Is the worker's result_backend the same as this client's (${this.asUri()} on ` +
          `${this.connection.displayUrl})?`,
      );
    }
    return new TimeoutError(
      `The operation timed out: task ${taskId} was not ready after ${ms} ms (last state seen: ${status}).`,
    );
  }

  /**
   * Yields `[taskId, meta]` as each task becomes READY (Celery's `get_many`): cached ready
   * results first, then in arrival order; each id once; a ready result for an id outside the
   * request only goes to the cache. `break` ends the receiving at once. The timeout covers the
   * whole call.
   *
   * @throws TimeoutError naming how many results are missing and a few of their ids;
   *   AbortError; ConnectionError once closed; DecodeError; ChannelError.
   * @example
   * ```ts
   * for await (const [id, meta] of backend.getMany<number>(ids, { timeout: 30_000 })) sum += meta.result;
   * ```
   */
  async *getMany<T = unknown>(
    taskIds: Iterable<string>,
    options: GetManyOptions = {},
  ): AsyncIterableIterator<[string, TaskMeta<T>]> {
    const pending = new Set<string>();
    for (const id of taskIds) {
      checkId(id);
      pending.add(id);
    }
    const total = pending.size;
    for (const id of pending) {
      const cached = this.cache.get(id);
      if (cached === undefined) continue;
      pending.delete(id);
      yield [id, typedMeta(cached)];
    }
    if (pending.size === 0) return;
    this.assertOpen();
    const ctl = this.waitControl(options, () => {
      const missing = [...pending].slice(0, NAMED_MISSING).join(', ');
      const more = pending.size > NAMED_MISSING ? ` and ${pending.size - NAMED_MISSING} more` : '';
      return new TimeoutError(
        `The operation timed out: ${pending.size} of ${total} results not ready after ` +
          `${options.timeout ?? 0} ms (missing: ${missing}${more}).`,
      );
    });
    const onMessage = options.onMessage;
    const inner = this.receiveMany([...pending], {
      signal: ctl.signal,
      noAck: options.noAck ?? true,
      onMessage: (meta) => {
        onMessage?.(meta);
        if (!isReady(meta.status)) ctl.interval();
      },
    });
    try {
      while (pending.size > 0) {
        // Not raced per result (a race per result piles reactions on the wait's promise):
        // the receiving side ends on ctl.signal, and the wait's own error is thrown.
        let next: IteratorResult<[string, TaskMeta]>;
        try {
          next = await inner.next();
        } catch (err) {
          throw ctl.cancelled ?? err;
        }
        if (next.done === true) break;
        const [id, meta] = next.value;
        // The receiving side may have cached it already (getMany's consumer does).
        if (!this.cache.has(id)) this.cache.set(id, meta);
        if (!pending.delete(id)) continue;
        yield [id, typedMeta(meta)];
      }
    } finally {
      ctl.dispose();
      await inner.return?.().catch(() => undefined);
    }
    if (pending.size > 0) throw ctl.cancelled ?? closedError();
  }

  /**
   * Forgets a task: drops its cache entry and what the broker side holds (AMQPBackend deletes
   * the task's queue; RPCBackend drops the buffered reply).
   *
   * @example
   * ```ts
   * await backend.forget(id);
   * ```
   */
  async forget(taskId: string): Promise<void> {
    checkId(taskId);
    this.cache.delete(taskId);
    this.assertOpen();
    await this.forgetResult(taskId);
  }

  /**
   * Persists a group (Celery's `save_group`). Not supported by this backend: rejects with
   * code UNSUPPORTED, as Celery raises NotImplementedError.
   */
  saveGroup(_groupId: string, _result: unknown): Promise<unknown> {
    return Promise.reject(unsupported('saveGroup'));
  }

  /** The saved group (Celery's `restore_group`); UNSUPPORTED here. */
  restoreGroup(_groupId: string, _options?: ReadOptions): Promise<GroupResult | null> {
    return Promise.reject(unsupported('restoreGroup'));
  }

  /** Deletes a saved group (Celery's `delete_group`); UNSUPPORTED here. */
  deleteGroup(_groupId: string): Promise<void> {
    return Promise.reject(unsupported('deleteGroup'));
  }

  /**
   * Ends every pending wait with a ConnectionError (code `CONNECTION_CLOSED`), releases the
   * backend's channels, and closes the connection when the backend opened it. Idempotent (a
   * second call waits for the first); leaves no timers.
   *
   * @example
   * ```ts
   * await backend.close();
   * ```
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing.abort(closedError());
    try {
      await this.closeResources();
    } finally {
      if (this.#ownsConnection) await this.connection.close();
    }
  }
}

function unsupported(what: string): CeleryAmqpError {
  return new CeleryAmqpError(`${what} is not supported by this backend.`, 'UNSUPPORTED');
}
