/**
 * Celery's AMQP result backend (`celery.backends.amqp.AMQPBackend`, Celery 3.1/4.4), wire
 * compatible with Python Celery (docs/wire.md): one queue per task on the `celeryresults`
 * exchange, results as messages, polling with the basic.get fast-forward, waiting by
 * consuming.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { ArgumentError, ConnectionError, DecodeError, TimeoutError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import { Connection } from '../kombu/connection.js';
import { Consumer } from '../kombu/consumer.js';
import { Exchange } from '../kombu/exchange.js';
import type { Message } from '../kombu/message.js';
import { Producer } from '../kombu/producer.js';
import { NoCacheQueue } from '../kombu/queue.js';
import { abortError } from '../kombu/retry.js';
import { prepareAcceptContent } from '../kombu/serialization.js';
import type {
  GetManyOptions,
  GetMetaOptions,
  RestoreGroupOptions,
  ResultBackend,
  StoreOptions,
  TaskMeta,
  TaskRequest,
  WaitOptions,
} from './backend-types.js';
import { BacklogLimitExceeded } from './exceptions.js';
import { DEFAULT_STORE_RETRY_POLICY } from './backend-options.js';
import type { RetryPolicy } from '../kombu/retry.js';
import type { AMQPBackendOptions, ConsumeOptions } from './backend-options.js';
import { ResultCache } from './result-cache.js';
import { consumeUntilReady, getMany } from './result-consumer.js';
import type { ResultSource } from './result-consumer.js';
import {
  decodeMeta,
  decodePayload,
  failureOptions,
  pendingMeta,
  resultBody,
  routingKeyFor,
  validateMeta,
} from './result-meta.js';
import { GroupResult, groupResultFromTuple } from './result.js';
import { resolveSettings } from './settings.js';
import { FAILURE, STARTED, SUCCESS, isReady } from './states.js';
import { StorePool, isChannelFailure } from './store-pool.js';
import { WaitControl } from './wait-control.js';

/**
 * The AMQP result backend. Every member of Celery's `AMQPBackend` (seed) is here under its
 * camelCase name.
 *
 * Bad input never crashes the process and is never acked away: an undecodable, disallowed
 * or malformed result rejects the call with a DecodeError (ContentDisallowedError) naming
 * the task, and the message is rejected with requeue. Note that RabbitMQ deletes an
 * auto-delete queue when its last consumer cancels, so on the consume paths (waitFor,
 * getMany) the message survives only with `autoDelete: false`.
 *
 * @example
 * ```ts
 * const backend = new AMQPBackend({ connection: 'amqp://guest:guest@127.0.0.1:5672//' });
 * await backend.storeResult(id, 42, 'SUCCESS');
 * (await backend.waitFor(id, { timeout: 5000 })).result; // 42
 * await backend.close();
 * ```
 */
export class AMQPBackend implements ResultBackend<GroupResult>, ResultSource {
  /** Too much state history to fast-forward (Celery's `AMQPBackend.BacklogLimitExceeded`). */
  static readonly BacklogLimitExceeded = BacklogLimitExceeded;
  /** kombu's Exchange class, as Celery exposes it. */
  readonly Exchange = Exchange;
  /** kombu's NoCacheQueue (Celery's `AMQPBackend.Queue`). */
  readonly Queue = NoCacheQueue;
  /** kombu's Producer. */
  readonly Producer = Producer;
  /** kombu's Consumer. */
  readonly Consumer = Consumer;
  /** Results expire on the broker (x-expires). */
  readonly supportsAutoexpire = true;
  /** GroupResult.joinNative may use getMany. */
  readonly supportsNativeJoin = true;

  /** The connection. */
  readonly connection: Connection;
  /** The result exchange (unbound). */
  readonly exchange: Exchange;
  /** Durable entities, delivery_mode 2. @default true */
  readonly persistent: boolean;
  /** 2 when persistent, else 1. */
  readonly deliveryMode: 1 | 2;
  /** Result serializer. @default 'json' */
  readonly serializer: string;
  /** Accepted serializer names (always including the serializer). */
  readonly accept: readonly string[];
  /** Accepted content types. */
  readonly acceptTypes: ReadonlySet<string>;
  /** Compression name/mime or null. @default null */
  readonly compression: string | null;
  /** Queue x-expires in ms or null. @default 86_400_000 */
  readonly expires: number | null;
  /** Auto-delete task queues. @default true */
  readonly autoDelete: boolean;
  /** Publisher confirms. @default true */
  readonly confirmPublish: boolean;
  /** Store retry policy. */
  readonly retryPolicy: Readonly<RetryPolicy>;
  /** Decoded body size limit. @default undefined */
  readonly maxBodyBytes: number | undefined;
  /** The result cache (result_cache_max). */
  readonly cache: ResultCache<TaskMeta>;

  readonly #ownsConnection: boolean;
  readonly #pool: StorePool;
  readonly #closing = new AbortController();
  #pollChannel: Promise<Channel> | undefined;
  #carefulTail: Promise<unknown> = Promise.resolve();
  readonly #groupCache: ResultCache<unknown>;
  #closed = false;

  /**
   * @param options - Connection, settings and overrides. @default memory://, Celery 4.x defaults
   * @throws ArgumentError for bad settings (see resolveSettings) or options.
   */
  constructor(options: AMQPBackendOptions = {}) {
    const s = resolveSettings(options.settings ?? {});
    // Every wait in flight listens on the closing signal (and removes its listener when it
    // ends), so 11 concurrent waits are normal, not the leak Node's warning assumes.
    setMaxListeners(0, this.#closing.signal);
    const conn = options.connection;
    this.#ownsConnection = !(conn instanceof Connection);
    this.connection = conn instanceof Connection ? conn : new Connection(conn ?? 'memory://');
    this.persistent = options.persistent ?? s.persistent;
    this.deliveryMode = this.persistent ? 2 : 1;
    this.serializer = options.serializer ?? s.serializer;
    const accept = [...(options.accept ?? s.accept)];
    if (!accept.includes(this.serializer)) accept.push(this.serializer);
    this.accept = Object.freeze(accept);
    this.acceptTypes = prepareAcceptContent(accept);
    this.compression = options.compression === undefined ? s.compression : options.compression;
    const expires = options.expires === undefined ? s.expiresMs : options.expires;
    if (expires !== null && (!Number.isFinite(expires) || expires <= 0)) {
      throw new ArgumentError(`expires must be a positive number of ms or null, got ${String(expires)}`);
    }
    this.expires = expires === null ? null : Math.trunc(expires);
    this.autoDelete = options.autoDelete ?? true;
    this.confirmPublish = options.confirmPublish ?? true;
    this.retryPolicy = Object.freeze({ ...DEFAULT_STORE_RETRY_POLICY, ...(options.retryPolicy ?? {}) });
    this.maxBodyBytes = options.maxBodyBytes;
    const cacheMax = options.cacheMax ?? s.cacheMax;
    this.cache = new ResultCache<TaskMeta>(cacheMax);
    this.#groupCache = new ResultCache<unknown>(cacheMax);
    this.exchange = new Exchange(options.exchange ?? s.exchange, {
      type: options.exchangeType ?? s.exchangeType,
      durable: this.persistent,
      autoDelete: false,
      deliveryMode: this.deliveryMode,
    });
    this.#pool = new StorePool(this.connection, {
      exchange: this.exchange,
      queue: { durable: this.persistent, autoDelete: this.autoDelete, expires: this.expires },
      serializer: this.serializer,
      compression: this.compression,
      deliveryMode: this.deliveryMode,
      confirm: this.confirmPublish,
      size: options.storeChannels ?? 16,
    });
  }

  /** Aborted when the backend closes (ends every wait). */
  get closingSignal(): AbortSignal {
    return this.#closing.signal;
  }

  /**
   * A task queue declaration (exchange, queue and binding) bound to `channel`.
   *
   * @example
   * ```ts
   * await backend.queueFor(backend.rkey(id), channel).declare();
   * ```
   */
  queueFor(routingKey: string, channel: Channel): NoCacheQueue {
    return this.#pool.queueFor(routingKey, channel);
  }

  /**
   * The routing key (= queue name) of a task: the id without dashes.
   *
   * @throws ArgumentError when the id is not a non-empty string.
   * @example
   * ```ts
   * backend.rkey('a-b'); // 'ab'
   * ```
   */
  rkey(taskId: string): string {
    return routingKeyFor(taskId);
  }

  /**
   * Where a result goes: `[routingKey, correlationId]` (Celery's `destination_for`).
   *
   * @example
   * ```ts
   * backend.destinationFor('a-b', { correlation_id: 'c' }); // ['ab', 'c']
   * ```
   */
  destinationFor(taskId: string, request?: TaskRequest): [string, string] {
    const rk = routingKeyFor(taskId);
    const cid = request?.correlation_id;
    return [rk, typeof cid === 'string' && cid !== '' ? cid : taskId];
  }

  /**
   * Publishes a state and result (Celery's `store_result`). Resolves with `result` once the
   * broker has the message (publisher confirms). Connection errors are retried per
   * {@link retryPolicy} (reconnecting first); a refused declaration (406) rejects with the
   * typed ChannelError.
   *
   * @example
   * ```ts
   * await backend.storeResult(id, { sum: 3 }, 'SUCCESS', { request: { correlation_id: id } });
   * ```
   */
  async storeResult(
    taskId: string,
    result: unknown,
    status: string,
    options: StoreOptions = {},
  ): Promise<unknown> {
    const [routingKey, correlationId] = this.destinationFor(taskId, options.request);
    if (typeof status !== 'string' || status === '') {
      throw new ArgumentError(`status must be a non-empty string, got ${typeof status}`);
    }
    if (routingKey === '') return result;
    const body = resultBody(taskId, result, status, options.traceback ?? null, options.request);
    await this.#ensure(
      () => this.#pool.store({ body, routingKey, correlationId, signal: options.signal }),
      options.signal,
    );
    return result;
  }

  #ensure<T>(fn: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (this.#closed) return Promise.reject(new ConnectionError('The result backend is closed'));
    return this.connection.ensure(fn, { ...this.retryPolicy, ...(signal === undefined ? {} : { signal }) });
  }

  /**
   * Stores SUCCESS (Celery's `mark_as_done`).
   *
   * @example
   * ```ts
   * await backend.markAsDone(id, 42);
   * ```
   */
  markAsDone(taskId: string, result: unknown, request?: TaskRequest): Promise<unknown> {
    return this.storeResult(taskId, result, SUCCESS, request === undefined ? {} : { request });
  }

  /**
   * Stores FAILURE with the error's exception dict (Celery's `mark_as_failure`) and a
   * traceback: `options.traceback`, else the error's stack (`null` stores none).
   *
   * @example
   * ```ts
   * await backend.markAsFailure(id, new TypeError('bad'), { traceback: 'Traceback ...' });
   * ```
   */
  markAsFailure(taskId: string, error: unknown, options: StoreOptions = {}): Promise<unknown> {
    return this.storeResult(taskId, error, FAILURE, failureOptions(error, options));
  }

  /**
   * Stores STARTED with `{pid, hostname}`-like meta (Celery's `mark_as_started`).
   *
   * @param request - The task request (correlation_id, children). @default undefined
   * @example
   * ```ts
   * await backend.markAsStarted(id, { pid: process.pid, hostname: 'node' });
   * ```
   */
  markAsStarted(taskId: string, meta: unknown = {}, request?: TaskRequest): Promise<unknown> {
    return this.storeResult(taskId, meta, STARTED, request === undefined ? {} : { request });
  }

  /**
   * The latest state of a task without consuming it (Celery's `get_task_meta`): the
   * basic.get fast-forward (each newer state acks the previous one, the latest is cached
   * and requeued). PENDING when nothing is known.
   *
   * @throws BacklogLimitExceeded past `backlogLimit` messages; DecodeError for a bad message (requeued).
   * @example
   * ```ts
   * (await backend.getTaskMeta(id)).status; // 'PENDING' | 'STARTED' | 'SUCCESS' | ...
   * ```
   */
  async getTaskMeta(taskId: string, options: GetMetaOptions = {}): Promise<TaskMeta> {
    const rk = routingKeyFor(taskId);
    const limit = options.backlogLimit ?? 1000;
    const latest = await this.#onPollChannel(
      (ch) => this.#fastForward(ch, rk, taskId, limit),
      options.signal,
    );
    if (latest !== null) {
      this.cache.set(taskId, latest);
      return latest;
    }
    return this.cache.get(taskId) ?? pendingMeta(taskId);
  }

  /**
   * Alias of {@link getTaskMeta} (Celery's `poll`).
   *
   * @example
   * ```ts
   * await backend.poll(id);
   * ```
   */
  poll(taskId: string, options: GetMetaOptions = {}): Promise<TaskMeta> {
    return this.getTaskMeta(taskId, options);
  }

  /** The fast-forward on one channel; returns the latest meta for the task or null. */
  async #fastForward(ch: Channel, rk: string, taskId: string, limit: number): Promise<TaskMeta | null> {
    const queue = this.queueFor(rk, ch);
    await queue.declare();
    ch.forgetQueue(rk);
    const held: Message[] = [];
    let latest: Message | undefined;
    let latestMeta: TaskMeta | null = null;
    try {
      for (let i = 0; ; i += 1) {
        if (i >= limit) throw new BacklogLimitExceeded(taskId);
        const m = await queue.get({
          noAck: false,
          accept: this.acceptTypes,
          ...(this.maxBodyBytes === undefined ? {} : { maxBytes: this.maxBodyBytes }),
        });
        if (m === null) break;
        held.push(m);
        const meta = decodeMeta(m, taskId);
        if (meta.task_id !== taskId) continue;
        if (latest !== undefined) {
          // Backends keep no history: everything but the most recent state is deleted.
          held.splice(held.indexOf(latest), 1);
          latest.ack();
        }
        latest = m;
        latestMeta = meta;
      }
    } finally {
      // The latest, the bad message and foreign ones all go back: polling never consumes.
      for (const m of held) if (!m.acknowledged) m.requeue();
    }
    return latestMeta;
  }

  /**
   * Runs a poll on the shared poll channel. A channel error there may be another poll's
   * (they share the channel), so it is retried once alone on a fresh channel, where a
   * failure is this poll's own.
   */
  async #onPollChannel<T>(fn: (ch: Channel) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (this.#closed) throw new ConnectionError('The result backend is closed');
    if (signal?.aborted === true) throw abortError(signal);
    const ctl = new WaitControl({ signal }, this.#closing.signal);
    try {
      this.#pollChannel ??= this.connection.channel();
      const ch = await ctl.race(this.#pollChannel);
      try {
        return await ctl.race(fn(ch));
      } catch (err) {
        if (!isChannelFailure(err)) throw err;
      }
      const alone = async (): Promise<T> => {
        const own = await this.connection.channel();
        try {
          return await fn(own);
        } finally {
          await own.close().catch(() => undefined);
        }
      };
      const p = this.#carefulTail.then(alone, alone);
      this.#carefulTail = p.catch(() => undefined);
      return await ctl.race(p);
    } finally {
      ctl.dispose();
    }
  }

  /**
   * Waits for a READY state (Celery's `wait_for`): a cached ready meta first; else a
   * basic.get (so a result already stored comes back in one round trip), then a consumer.
   * Non-ready states (STARTED, RETRY, custom) update the cache and call `onInterval`, and
   * never resolve the wait. Returns the meta: raising a FAILURE is AsyncResult.get's job.
   * `onInterval` is called about once a second while waiting and on every non-ready state.
   *
   * @throws TimeoutError ("The operation timed out.") at the deadline (a timer); AbortError;
   *   DecodeError for a bad message (requeued).
   * @example
   * ```ts
   * const meta = await backend.waitFor(id, { timeout: 10_000 });
   * ```
   */
  async waitFor(taskId: string, options: WaitOptions = {}): Promise<TaskMeta> {
    routingKeyFor(taskId);
    if (options.cache ?? true) {
      const cached = this.cache.get(taskId);
      if (cached !== undefined && isReady(cached.status)) return cached;
    }
    return this.consume(taskId, options);
  }

  /**
   * Consumes the task's queue until a READY state arrives (Celery's `consume`), ignoring the cache.
   *
   * @throws TimeoutError, AbortError, DecodeError, ChannelError (refused declaration).
   * @example
   * ```ts
   * await backend.consume(id, { timeout: 1000 });
   * ```
   */
  async consume(taskId: string, options: ConsumeOptions = {}): Promise<TaskMeta> {
    const rk = routingKeyFor(taskId);
    if (this.#closed) throw new ConnectionError('The result backend is closed');
    const noAck = options.noAck ?? true;
    const ctl = new WaitControl(
      { timeout: options.timeout, signal: options.signal, onInterval: options.onInterval },
      this.#closing.signal,
    );
    try {
      const fast = await ctl.race(
        this.#onPollChannel((ch) => this.#getReady(ch, rk, taskId, noAck, ctl), undefined),
      );
      if (fast !== null) return fast;
      return await consumeUntilReady(this, taskId, rk, noAck, ctl);
    } finally {
      ctl.dispose();
    }
  }

  /** basic.get until empty: the first READY state of the task, or null. */
  async #getReady(
    ch: Channel,
    rk: string,
    taskId: string,
    noAck: boolean,
    ctl: WaitControl,
  ): Promise<TaskMeta | null> {
    const queue = this.queueFor(rk, ch);
    await queue.declare({ nowait: true });
    ch.forgetQueue(rk);
    const held: Message[] = [];
    try {
      for (let i = 0; i < 1000 && ctl.cancelled === undefined; i += 1) {
        const m = await queue.get({
          noAck: false,
          accept: this.acceptTypes,
          ...(this.maxBodyBytes === undefined ? {} : { maxBytes: this.maxBodyBytes }),
        });
        if (m === null) return null;
        const meta = decodeMeta((held.push(m), m), taskId);
        this.cache.set(meta.task_id, meta);
        if (meta.task_id !== taskId) continue;
        // Consumed like a no_ack consumer would (unless the wait was given up meanwhile).
        const consume = noAck && ctl.cancelled === undefined;
        if (isReady(meta.status)) {
          if (consume) m.ack();
          return meta;
        }
        if (consume) m.ack();
        ctl.interval();
      }
      return null;
    } finally {
      for (const m of held) if (!m.acknowledged) m.requeue();
    }
  }

  /**
   * Celery's `drain_events`: waits on the connection (at most a second at a time, never
   * past the deadline) until `consumer` delivered READY states; returns them by task id and
   * caches them. Non-ready states are dropped. `onInterval` runs between waits.
   *
   * @throws TimeoutError at the deadline; AbortError.
   * @example
   * ```ts
   * const consumer = new Consumer(ch, { queues: [backend.queueFor(backend.rkey(id), ch)], noAck: true });
   * await consumer.consume();
   * const results = await backend.drainEvents(backend.connection, consumer, { timeout: 5000 });
   * ```
   */
  async drainEvents(
    connection: Connection,
    consumer: Consumer,
    options: { timeout?: number; onInterval?: () => void; signal?: AbortSignal } = {},
  ): Promise<Record<string, TaskMeta>> {
    const results: Record<string, TaskMeta> = {};
    let found = false;
    consumer.callbacks.splice(0, consumer.callbacks.length, (body) => {
      const id = (body as { task_id?: unknown } | null)?.task_id;
      try {
        const meta = (() => {
          if (typeof id !== 'string') throw new DecodeError('Malformed result message: no task_id');
          return validateMeta(body, id);
        })();
        if (isReady(meta.status)) {
          results[meta.task_id] = meta;
          found = true;
        }
      } catch {
        // A malformed body is no result; it is left as the consumer's noAck decides.
      }
    });
    const start = performance.now();
    for (;;) {
      const remaining = options.timeout === undefined ? 1000 : options.timeout - (performance.now() - start);
      if (remaining <= 0) throw new TimeoutError();
      try {
        await connection.drainEvents({
          timeout: Math.min(1000, remaining),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
      }
      options.onInterval?.();
      if (found) break;
    }
    for (const [id, meta] of Object.entries(results)) this.cache.set(id, meta);
    return results;
  }

  /**
   * Yields `[taskId, meta]` as each task becomes READY (Celery's `get_many`): cached ready
   * results first, then in arrival order over one consumer; each id once; a ready result
   * for an id outside the request only goes to the cache. `break` cancels every consumer.
   * The timeout covers the whole call.
   *
   * @throws TimeoutError naming how many are missing; AbortError; DecodeError; ChannelError.
   * @example
   * ```ts
   * for await (const [id, meta] of backend.getMany(ids, { timeout: 30_000 })) results.set(id, meta);
   * ```
   */
  getMany(
    taskIds: Iterable<string>,
    options: GetManyOptions = {},
  ): AsyncIterableIterator<[string, TaskMeta]> {
    return getMany(this, taskIds, options);
  }

  /**
   * Saves a group's member ids (Celery raises NotImplementedError; we persist them): a
   * message holding the GroupResult tuple in a queue named by the group id, with the same
   * flags and expiry as result queues.
   *
   * @param result - A GroupResult (its `asTuple()`), or the member task ids.
   * @example
   * ```ts
   * await backend.saveGroup(groupId, [id1, id2]);
   * ```
   */
  async saveGroup(groupId: string, result: unknown): Promise<unknown> {
    const routingKey = routingKeyFor(groupId, 'groupId');
    const body = groupTuple(groupId, result);
    await this.#ensure(() => this.#pool.store({ body, routingKey, correlationId: groupId }), undefined);
    this.#groupCache.set(groupId, body);
    return result;
  }

  /**
   * The saved group as a GroupResult, or null. Reads with the requeue trick: the message
   * stays for other readers.
   *
   * @throws DecodeError for a body that is not a group tuple.
   * @example
   * ```ts
   * const group = await backend.restoreGroup(groupId);
   * ```
   */
  async restoreGroup(groupId: string, options: RestoreGroupOptions = {}): Promise<GroupResult | null> {
    const rk = routingKeyFor(groupId, 'groupId');
    let tuple: unknown = (options.cache ?? true) ? this.#groupCache.get(groupId) : undefined;
    if (tuple === undefined) {
      tuple = await this.#onPollChannel(async (ch) => {
        const queue = this.queueFor(rk, ch);
        await queue.declare();
        ch.forgetQueue(rk);
        const held: Message[] = [];
        let body: unknown;
        try {
          for (;;) {
            const m = await queue.get({ noAck: false, accept: this.acceptTypes });
            if (m === null) break;
            held.push(m);
            body = decodePayload(m, groupId);
          }
        } finally {
          for (const m of held) if (!m.acknowledged) m.requeue();
        }
        return body;
      }, options.signal);
      if (tuple === undefined) return null;
    }
    try {
      const group = groupResultFromTuple(tuple, this);
      this.#groupCache.set(groupId, tuple);
      return group;
    } catch (err) {
      throw new DecodeError(`Malformed group message for group ${groupId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /**
   * Deletes a saved group (its queue) and forgets it.
   *
   * @example
   * ```ts
   * await backend.deleteGroup(groupId);
   * ```
   */
  async deleteGroup(groupId: string): Promise<void> {
    const rk = routingKeyFor(groupId, 'groupId');
    this.#groupCache.delete(groupId);
    await this.#onPollChannel((ch) => ch.deleteQueue({ queue: rk }), undefined);
  }

  /**
   * Forgets a task: deletes its queue and cache entry.
   *
   * @example
   * ```ts
   * await backend.forget(id);
   * ```
   */
  async forget(taskId: string): Promise<void> {
    const rk = routingKeyFor(taskId);
    this.cache.delete(taskId);
    await this.#onPollChannel((ch) => ch.deleteQueue({ queue: rk }), undefined);
  }

  /**
   * Ends every wait (AbortError), closes the backend's channels, and the connection when
   * the backend opened it. Idempotent; leaves no timers.
   *
   * @example
   * ```ts
   * await backend.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new ConnectionError('The result backend is closed'));
    await this.#pool.close();
    const poll = this.#pollChannel;
    this.#pollChannel = undefined;
    if (poll !== undefined) await poll.then((c) => c.close()).catch(() => undefined);
    await this.#carefulTail;
    if (this.#ownsConnection) await this.connection.close();
  }
}

/** A GroupResult (asTuple) or ids → the group tuple Celery uses. */
function groupTuple(groupId: string, result: unknown): unknown {
  if (result instanceof GroupResult) return result.asTuple();
  const asTuple = (result as { asTuple?: unknown } | null)?.asTuple;
  if (typeof asTuple === 'function') return (asTuple as () => unknown).call(result);
  if (Array.isArray(result) && result.every((x) => typeof x === 'string' && x !== '')) {
    return [groupId, result.map((id: string) => [[id, null], null])];
  }
  throw new ArgumentError('saveGroup needs a GroupResult or an array of task ids');
}
