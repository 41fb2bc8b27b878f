/**
 * Celery's AMQP result backend (`celery.backends.amqp.AMQPBackend`, Celery 3.1/4.4), wire
 * compatible with Python Celery (docs/wire.md): one queue per task on the `celeryresults`
 * exchange, results as messages, polling with the basic.get fast-forward, waiting by
 * consuming. What every backend shares (the cache, waits, close, markAs*) is BaseBackend's.
 *
 * @module
 */
import { ArgumentError, ChannelError, DecodeError, TimeoutError } from '../errors.js';
import type { QueueLostError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import type { Connection } from '../kombu/connection.js';
import { Consumer } from '../kombu/consumer.js';
import { Exchange } from '../kombu/exchange.js';
import type { Message } from '../kombu/message.js';
import { Producer } from '../kombu/producer.js';
import { NoCacheQueue } from '../kombu/queue.js';
import { abortError } from '../kombu/retry.js';
import type { GetMetaOptions, ReadOptions, TaskMeta, TaskRequest, WaitForOptions } from './backend-types.js';
import type { AMQPBackendOptions } from './backend-options.js';
import { BaseBackend } from './base-backend.js';
import type { ReceiveManyOptions } from './base-backend.js';
import { BacklogLimitExceeded } from './exceptions.js';
import { ResultCache } from './result-cache.js';
import { consumeUntilReady, getMany } from './result-consumer.js';
import type { ResultSource } from './result-consumer.js';
import { decodeMeta, decodePayload, routingKeyFor, validateMeta } from './result-meta.js';
import { GroupResult, groupResultFromTuple } from './result.js';
import { isReady } from './states.js';
import { StorePool, isChannelFailure } from './store-pool.js';
import type { WaitControl } from './wait-control.js';

/**
 * The AMQP result backend. Every member of Celery's `AMQPBackend` (seed) is here under its
 * camelCase name; the shared ones come from {@link BaseBackend}.
 *
 * A read that consumes a task's READY result with basic.get and leaves its queue empty
 * deletes the queue (if still empty and unused), as Celery's consumer-based read leaves
 * nothing behind (RabbitMQ deletes an auto-delete queue when its consumer goes); with
 * `autoDelete: false` queues are kept until `x-expires`.
 *
 * Bad input never crashes the process and is never acked away: an undecodable, disallowed
 * or malformed result rejects the call with a DecodeError (ContentDisallowedError) naming
 * the task, and the message is rejected with requeue. Note that RabbitMQ deletes an
 * auto-delete queue when its last consumer cancels, so on the consume paths (waitFor,
 * getMany) the message survives only with `autoDelete: false`.
 *
 * With `result_extended`, a result carries the fields Celery 4.4.7's `store_result` adds:
 * `name`, `args`, `kwargs`, `worker`, `retries`, `queue` (and Celery 5.3's stamps). `name`
 * is the request's task name; 4.4.7 reads `request.task_name`, which a Celery worker's
 * request does not have, so a Python 4.4 worker stores null there.
 *
 * @example
 * ```ts
 * const backend = new AMQPBackend({ connection: 'amqp://guest:guest@127.0.0.1:5672//' });
 * await backend.storeResult(id, 42, 'SUCCESS');
 * (await backend.waitFor<number>(id, { timeout: 5000 })).result; // 42
 * await backend.close();
 * ```
 */
export class AMQPBackend extends BaseBackend implements ResultSource {
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

  /** The result exchange (unbound). */
  readonly exchange: Exchange;
  /** Auto-delete task queues (and delete those a read emptied). @default true */
  readonly autoDelete: boolean;

  readonly #pool: StorePool;
  #pollChannel: Promise<Channel> | undefined;
  #cleanupChannel: Promise<Channel> | undefined;
  readonly #cleanups = new Set<Promise<void>>();
  #carefulTail: Promise<unknown> = Promise.resolve();
  readonly #groupCache: ResultCache<unknown>;
  /** Waits consuming a task queue, by routing key: told when the queue is lost. */
  readonly #waiting = new Map<string, Set<WaitControl>>();
  readonly #onQueueLost = (queue: string, err: QueueLostError): void => {
    for (const ctl of this.#waiting.get(queue) ?? []) ctl.note(err);
  };

  /**
   * @param options - Connection, settings and overrides.
   *   @default CELERY_BROKER_URL else amqp://guest:guest@localhost:5672//, Celery 4.x defaults
   * @throws ArgumentError for bad settings (see resolveSettings) or options.
   */
  constructor(options: AMQPBackendOptions = {}) {
    super(options, { persistent: true, extendedLayout: 'amqp' });
    const s = this.settings;
    this.autoDelete = options.autoDelete ?? true;
    this.#groupCache = new ResultCache<unknown>(this.cache.limit);
    this.exchange = new Exchange(options.exchange ?? s.exchange, {
      type: options.exchangeType ?? s.exchangeType,
      durable: this.persistent,
      autoDelete: false,
      deliveryMode: this.deliveryMode,
    });
    this.#pool = new StorePool(this.connection, {
      exchange: this.exchange,
      queue: { durable: this.persistent, autoDelete: this.autoDelete, expires: this.expiresMs },
      serializer: this.serializer,
      compression: this.compression,
      deliveryMode: this.deliveryMode,
      confirm: this.confirmPublish,
      size: options.storeChannels ?? 16,
      limits: this.decodeLimits,
    });
    this.connection.on('queueLost', this.#onQueueLost);
  }

  /** Celery's `result_backend` scheme for this backend. */
  asUri(): string {
    return 'amqp://';
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

  protected publish(
    body: TaskMeta,
    routingKey: string,
    correlationId: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    return this.#pool.store({
      body,
      routingKey,
      correlationId,
      signal,
      label: `result of task ${body.task_id}`,
    });
  }

  protected async fetchMeta(taskId: string, options: GetMetaOptions): Promise<TaskMeta | null> {
    const rk = routingKeyFor(taskId);
    const limit = options.backlogLimit ?? 1000;
    return this.#onPollChannel((ch) => this.#fastForward(ch, rk, taskId, limit), options.signal);
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
        const m = await queue.get(this.#getOptions());
        if (m === null) break;
        held.push(m);
        const meta = decodeMeta(m, taskId, this.decodeLimits);
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

  #getOptions(): { noAck: false; accept: ReadonlySet<string> } {
    return { noAck: false, accept: this.acceptTypes };
  }

  /**
   * Runs a poll on the shared poll channel. A channel error there may be another poll's
   * (they share the channel), so it is retried once alone on a fresh channel, where a
   * failure is this poll's own.
   */
  async #onPollChannel<T>(fn: (ch: Channel) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    this.assertOpen();
    if (signal?.aborted === true) throw abortError(signal);
    const ctl = this.waitControl({ signal }, () => new TimeoutError());
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

  /** A cached ready meta was checked by the base: basic.get first (one round trip), then a consumer. */
  protected async receiveReady(taskId: string, ctl: WaitControl, options: WaitForOptions): Promise<TaskMeta> {
    const rk = routingKeyFor(taskId);
    const noAck = options.noAck ?? true;
    // A task queue lost (its node went down, or auto-deleted with our connection) is declared
    // again at once, and workers declare it before every store: a result stored after the
    // loss still arrives, so the wait goes on. Only one being delivered at that moment is
    // gone; that wait ends at its deadline, with the loss named as the cause.
    const waits = this.#waiting.get(rk) ?? new Set<WaitControl>();
    this.#waiting.set(rk, waits.add(ctl));
    try {
      const fast = await ctl.race(
        this.#onPollChannel((ch) => this.#getReady(ch, rk, taskId, noAck, ctl), undefined),
      );
      if (fast !== null) return fast;
      return await consumeUntilReady(this, taskId, rk, noAck, ctl);
    } finally {
      if (waits.delete(ctl) && waits.size === 0) this.#waiting.delete(rk);
    }
  }

  /**
   * Consumes the task's queue until a READY state arrives (Celery's `consume`), ignoring the
   * cache: {@link waitFor} with `cache: false`.
   *
   * @throws TimeoutError, AbortError, ConnectionError once closed, DecodeError, ChannelError.
   * @example
   * ```ts
   * await backend.consume(id, { timeout: 1000 });
   * ```
   */
  consume<T = unknown>(taskId: string, options: WaitForOptions = {}): Promise<TaskMeta<T>> {
    return this.waitFor<T>(taskId, { ...options, cache: false });
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
        const m = await queue.get(this.#getOptions());
        if (m === null) return null;
        const meta = decodeMeta((held.push(m), m), taskId, this.decodeLimits);
        this.cache.set(meta.task_id, meta);
        if (meta.task_id !== taskId) continue;
        // Consumed like a no_ack consumer would (unless the wait was given up meanwhile).
        const consume = noAck && ctl.cancelled === undefined;
        if (consume) m.ack();
        if (isReady(meta.status)) {
          if (consume && m.deliveryInfo.messageCount === 0) this.#deleteIfDrained(rk);
          return meta;
        }
        ctl.interval();
      }
      return null;
    } finally {
      for (const m of held) if (!m.acknowledged) m.requeue();
    }
  }

  /**
   * Deletes a queue this read emptied, if it is still empty and nobody consumes from it:
   * Celery reads through a consumer, whose cancel makes RabbitMQ delete the auto-delete
   * queue; a basic.get read would leave it until x-expires. In the background, on a channel
   * of its own: a refusal (406, a message came in or someone consumes) closes only that
   * channel and means the queue is in use, not an error. close() waits for it.
   */
  #deleteIfDrained(rk: string): void {
    if (!this.autoDelete || this.closed) return;
    const run = async (): Promise<void> => {
      this.#cleanupChannel ??= this.connection.channel();
      const ch = await this.#cleanupChannel;
      await ch.deleteQueue({ queue: rk, ifEmpty: true, ifUnused: true });
    };
    const p = run().catch((err: unknown) => {
      if (err instanceof ChannelError || this.closed) return;
      this.reportError(err);
    });
    this.#cleanups.add(p);
    void p.finally(() => this.#cleanups.delete(p));
  }

  /**
   * Celery's `drain_events`: waits on the connection (at most a second at a time, never
   * past the deadline) until `consumer` delivered READY states; returns them by task id and
   * caches them. Non-ready states are dropped; a body that is no result is reported
   * ('error' event, else the logger). `onInterval` runs between waits; `timeout` is in ms.
   *
   * @throws TimeoutError at the deadline; AbortError; ConnectionError once the backend closes.
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
      try {
        const id = isRecord(body) ? body['task_id'] : undefined;
        if (typeof id !== 'string') throw new DecodeError('Malformed result message: no task_id');
        const meta = validateMeta(body, id);
        if (isReady(meta.status)) {
          results[meta.task_id] = meta;
          found = true;
        }
      } catch (err) {
        // No call can fail for it: the message is left as the consumer's noAck decides.
        this.reportError(err);
      }
    });
    const ctl = this.waitControl(
      { timeout: options.timeout, signal: options.signal },
      () =>
        new TimeoutError(
          `The operation timed out: no ready result on the consumer after ${options.timeout} ms`,
        ),
    );
    try {
      while (!found) {
        try {
          // A second at a time, so onInterval runs; ended at once by the deadline or a signal.
          await ctl.race(connection.drainEvents({ timeout: 1000, signal: ctl.signal }));
        } catch (err) {
          if (ctl.cancelled !== undefined || !(err instanceof TimeoutError)) throw ctl.cancelled ?? err;
        }
        options.onInterval?.();
      }
    } finally {
      ctl.dispose();
    }
    for (const [id, meta] of Object.entries(results)) this.cache.set(id, meta);
    return results;
  }

  /** One consumer over every task queue (result-consumer.ts); the base filters and caches. */
  protected receiveMany(
    taskIds: readonly string[],
    options: ReceiveManyOptions,
  ): AsyncIterator<[string, TaskMeta]> {
    return getMany(this, taskIds, {
      noAck: options.noAck,
      onMessage: options.onMessage,
      signal: options.signal,
    });
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
  override async saveGroup(groupId: string, result: unknown): Promise<unknown> {
    const routingKey = routingKeyFor(groupId, 'groupId');
    const body = groupTuple(groupId, result);
    this.assertOpen();
    await this.connection.ensure(
      () => this.#pool.store({ body, routingKey, correlationId: groupId, label: `group ${groupId}` }),
      this.retryPolicy,
    );
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
  override async restoreGroup(groupId: string, options: ReadOptions = {}): Promise<GroupResult | null> {
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
            const m = await queue.get(this.#getOptions());
            if (m === null) break;
            held.push(m);
            body = decodePayload(m, groupId, this.decodeLimits, 'group');
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
      throw new DecodeError(`Malformed group message for group ${groupId}: ${String(err)}`, { cause: err });
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
  override async deleteGroup(groupId: string): Promise<void> {
    const rk = routingKeyFor(groupId, 'groupId');
    this.#groupCache.delete(groupId);
    await this.#onPollChannel((ch) => ch.deleteQueue({ queue: rk }), undefined);
  }

  /** Deletes the task's queue. */
  protected async forgetResult(taskId: string): Promise<void> {
    const rk = routingKeyFor(taskId);
    await this.#onPollChannel((ch) => ch.deleteQueue({ queue: rk }), undefined);
  }

  protected async closeResources(): Promise<void> {
    this.connection.off('queueLost', this.#onQueueLost);
    await this.#pool.close();
    await Promise.all([...this.#cleanups]);
    for (const channel of [this.#pollChannel, this.#cleanupChannel]) {
      if (channel !== undefined) await channel.then((c) => c.close()).catch(() => undefined);
    }
    this.#pollChannel = undefined;
    this.#cleanupChannel = undefined;
    await this.#carefulTail;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A GroupResult (asTuple) or ids → the group tuple Celery uses. */
function groupTuple(groupId: string, result: unknown): unknown {
  if (result instanceof GroupResult) return result.asTuple();
  const asTuple: unknown = isRecord(result) ? result['asTuple'] : undefined;
  if (typeof asTuple === 'function') return asTuple.call(result);
  if (Array.isArray(result) && result.every((x) => typeof x === 'string' && x !== '')) {
    return [groupId, result.map((id: string) => [[id, null], null])];
  }
  throw new ArgumentError('saveGroup needs a GroupResult or an array of task ids');
}
