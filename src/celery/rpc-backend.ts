/**
 * The RPC result backend (`rpc://`, Celery 4.x/5.x's `celery.backends.rpc.RPCBackend`): one
 * reply queue per client, results sent to the default exchange with the task message's
 * `reply_to` as routing key (docs/wire.md §6). What every backend shares (the cache, waits, close,
 * markAs*, the store retry) is BaseBackend's; this module holds the reply queue.
 *
 * What Celery 5.2 really declares (rpc.py `binding`, checked with `rabbitmqctl`): the reply
 * queue is named after the app's oid (a UUID string with dashes), `durable: false`,
 * `auto_delete: true`, `x-expires` = result_expires in ms (86 400 000 by default), bound to
 * nothing but the default exchange. Celery's main branch (5.7) declares it `durable: true`
 * for RabbitMQ 4.3, which refuses transient non-exclusive queues: `replyQueueDurable`. Results go out with delivery_mode 1 (the backend's
 * `persistent = False`) unless result_persistent is set, with no mandatory flag.
 *
 * With `result_extended`, a result is laid out as Celery's main branch does it (the RPC
 * backend respects the setting since commit 7c5d9a62d; 5.2 ignores it): Celery's
 * `_get_result_meta` plus `task_id`, so `date_done`, `group_id`, `parent_id` and the
 * request's name, args, kwargs, worker, retries, queue and stamps.
 *
 * Differences from Celery, on purpose:
 * - The reply consumer starts with the queue declaration (before the first task is sent),
 *   not on the first `get()`, so every reply is received and buffered as it arrives.
 * - Hence `getTaskMeta` never needs basic.get: with a consumer on the queue there is no
 *   backlog to fast-forward (Celery's basic.get only finds messages while its consumer is not
 *   running). It answers from what the consumer received: the latest state for the id
 *   (ready or not, so PROGRESS is visible), else PENDING. `backlogLimit` is accepted and unused.
 * - A reply buffered for an id is what a message in a task queue is to AMQPBackend: a wait
 *   takes (consumes) it, a poll only looks; the result cache keeps it for later reads.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import {
  ArgumentError,
  DecodeError,
  QueueLostError,
  TimeoutError,
  TransientQueueDeniedError,
  settleStack,
} from '../errors.js';
import { onAbort } from '../kombu/abort-listener.js';
import type { Channel } from '../kombu/channel.js';
import { Consumer } from '../kombu/consumer.js';
import type { Message } from '../kombu/message.js';
import { Producer } from '../kombu/producer.js';
import { Queue } from '../kombu/queue.js';
import type { GetMetaOptions, TaskMeta, TaskRequest, WaitForOptions } from './backend-types.js';
import type { BackendCommonOptions } from './backend-options.js';
import { BaseBackend } from './base-backend.js';
import type { ReceiveManyOptions } from './base-backend.js';
import { ResultCache } from './result-cache.js';
import { decodePayload, validateMeta } from './result-meta.js';
import { PENDING, isReady } from './states.js';
import type { WaitControl } from './wait-control.js';

/**
 * Options of {@link RPCBackend}: the common ones (persistent defaults to false, as Celery's
 * rpc://) and its own.
 *
 * @example
 * ```ts
 * new RPCBackend({ connection, settings: { result_expires: 3600 }, bufferMax: 10_000 });
 * ```
 */
export interface RPCBackendOptions extends BackendCommonOptions {
  /** Reply queue name (Celery's `app.oid`). @default a random UUID */
  oid?: string | undefined;
  /** Most replies buffered for ids nobody waits for yet (LRU; Celery's MESSAGE_BUFFER_MAX). @default 8192 */
  bufferMax?: number | undefined;
  /**
   * Declare the reply queue durable (`durable: true, auto_delete: true`, x-expires), as
   * Celery's main branch (5.7, commit 323f21d "RabbitMQ 4.3.0 compatibility") does, instead of
   * Celery 4.x-5.6's transient `durable: false`, which RabbitMQ 4.3 refuses by default (a
   * {@link TransientQueueDeniedError}). Only this client declares its reply queue (workers
   * publish to it without declaring), so either choice interoperates with every Celery
   * worker. Celery has no setting for it.
   * @default false (Celery 5.6)
   */
  replyQueueDurable?: boolean | undefined;
}

/**
 * Called with each state received for an id (and the id, so one function can serve many),
 * or with the typed error of a reply for the id that could not be decoded; returns true when
 * it took (consumed) a ready state, which then leaves the buffer.
 */
type Listener = (meta: TaskMeta | Error, id: string) => boolean;

/**
 * Celery's RPC result backend. Implements {@link ResultBackend} through {@link BaseBackend},
 * so AsyncResult, GroupResult and ResultSet (joinNative over getMany) work with it unchanged.
 *
 * Client side: {@link ensureReplyQueue} (called by `Celery.sendTask` before publishing, as
 * {@link onTaskCall}) declares the reply queue and starts the one no-ack consumer; replies
 * are matched by correlation_id (fallback: body task_id). Worker side: storeResult
 * publishes to the request's reply_to.
 *
 * A reply that cannot be decoded (malformed, disallowed, or past {@link decodeLimits}) or is
 * no result message cannot stay in the queue: the consumer is no-ack, as Celery's, so the
 * broker has already dropped it. Its typed error (naming the task and, for a limit, the
 * limit) rejects at once every wait for its correlation_id, and is kept (LRU, `bufferMax`)
 * for every later wait or poll of that id until a good reply for it arrives; each is
 * reported ('error' event, else the logger) and counted in {@link droppedMessages}.
 *
 * @example
 * ```ts
 * const backend = new RPCBackend({ connection: 'amqp://guest:guest@127.0.0.1:5672//' });
 * await backend.ensureReplyQueue();
 * // ...publish a task with replyTo: backend.oid, correlationId: id...
 * const meta = await backend.waitFor(id, { timeout: 10_000 });
 * await backend.close();
 * ```
 */
export class RPCBackend extends BaseBackend {
  /** The reply queue name (Celery's `app.oid`). */
  readonly oid: string;
  /** The reply queue declaration (Celery's `binding`). */
  readonly binding: Queue;
  /** Replies dropped because they were no result message (each is also reported). */
  droppedMessages = 0;

  /** Replies received and not yet taken: the latest state per id. */
  readonly #buffer: ResultCache<TaskMeta>;
  /** The errors of undecodable replies nobody waited for, by correlation_id. */
  readonly #undecodable: ResultCache<Error>;
  readonly #listeners = new Map<string, Listener | Listener[]>();
  #consumer: Promise<Consumer> | undefined;
  #consuming = false;
  #producer: Promise<Producer> | undefined;
  #producerReady: Producer | undefined;
  /** The pending waits (waitFor and getMany), told when the reply queue is lost. */
  readonly #onLost = new Set<(err: QueueLostError) => void>();
  /** The reply queue was lost with the replies in it (its node went down, or it was auto-deleted with a lost connection): pending waits fail now. */
  readonly #onQueueLost = (queue: string, err: QueueLostError): void => {
    if (queue !== this.oid) return;
    const lost = new QueueLostError(
      queue,
      `Replies of the tasks pending now may be lost: ${err.message}. A reply sent after this still arrives: wait again, or send the task again.`,
      { cause: err },
    );
    for (const fail of [...this.#onLost]) fail(lost);
  };

  /**
   * @param options - Connection, settings and overrides.
   *   @default CELERY_BROKER_URL else amqp://guest:guest@localhost:5672//, Celery's rpc:// defaults
   * @throws ArgumentError for bad settings or options (an `expires` that is not seconds or null, ...).
   */
  constructor(options: RPCBackendOptions = {}) {
    super(options, { persistent: false, extendedLayout: 'meta' });
    this.oid = options.oid ?? randomUUID();
    const bufferMax = options.bufferMax ?? 8192;
    if (!Number.isSafeInteger(bufferMax) || bufferMax < 1) {
      throw new ArgumentError(`bufferMax must be an integer >= 1, got ${String(bufferMax)}`);
    }
    this.#buffer = new ResultCache<TaskMeta>(bufferMax);
    this.#undecodable = new ResultCache<Error>(bufferMax);
    this.binding = new Queue(this.oid, {
      durable: options.replyQueueDurable ?? false,
      autoDelete: true,
      ...(this.expiresMs === null ? {} : { expires: this.expiresMs }),
    });
    this.connection.on('queueLost', this.#onQueueLost);
  }

  /** Celery's `as_uri()`. */
  asUri(): string {
    return 'rpc://';
  }

  /**
   * Declares the reply queue and starts the reply consumer (once; later calls wait for the
   * first). Celery's `on_task_call`: call it before sending a task so no reply is lost.
   *
   * @param options - `timeout` (ms) and `signal` of this wait. @default {}
   * @throws TimeoutError, AbortError, ConnectionError once closed, or the declaration's error.
   * @example
   * ```ts
   * await backend.ensureReplyQueue({ timeout: 5000 });
   * ```
   */
  async ensureReplyQueue(
    options: { timeout?: number | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<void> {
    this.assertOpen();
    if (this.#consuming) return;
    if (this.#consumer === undefined) {
      const started = this.#startConsumer();
      this.#consumer = started;
      // A failed start can be retried by the next call.
      started.then(
        () => {
          if (this.#consumer === started) this.#consuming = true;
        },
        () => {
          if (this.#consumer === started) this.#consumer = undefined;
        },
      );
    }
    const ctl = this.waitControl(
      options,
      () =>
        new TimeoutError(
          `The operation timed out: reply queue ${this.oid} not ready after ${options.timeout} ms`,
        ),
    );
    try {
      await ctl.race(this.#consumer);
    } finally {
      ctl.dispose();
    }
  }

  /** Declares the reply queue and starts its consumer before a task is sent. */
  override onTaskCall(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    return this.ensureReplyQueue(options);
  }

  async #startConsumer(): Promise<Consumer> {
    const channel = await this.connection.channel();
    const consumer = new Consumer(channel, {
      queues: [this.binding],
      noAck: true,
      accept: this.accept,
      onMessage: (m) => this.#onReply(m),
      tagPrefix: 'rpc.',
    });
    try {
      await consumer.consume({ noAck: true });
    } catch (err) {
      await channel.close().catch(() => undefined);
      throw err instanceof TransientQueueDeniedError ? this.#denied(err) : err;
    }
    if (this.closed) {
      await channel.close().catch(() => undefined);
      this.assertOpen();
    }
    return consumer;
  }

  /** RabbitMQ 4.3 refused the transient reply queue: name it and the option that avoids it. */
  #denied(err: TransientQueueDeniedError): TransientQueueDeniedError {
    return new TransientQueueDeniedError(err.brokerText, {
      queue: this.oid,
      hint:
        'replyQueueDurable: true on this RPCBackend (the reply queue is then durable=True, auto_delete=True, ' +
        'x-expires, as Celery >= 5.7 declares it; only this client declares it, so any Celery worker still ' +
        'replies); Python clients on this broker need Celery >= 5.7, or the broker ' +
        'deprecated_features.permit.transient_nonexcl_queues = true',
      cause: err,
    });
  }

  #onReply(message: Message): void {
    const correlationId = message.properties.correlationId;
    let meta: TaskMeta;
    try {
      const id = correlationId ?? 'unknown (no correlation_id)';
      meta = asMeta(decodePayload(message, id, this.decodeLimits), id);
    } catch (err) {
      this.#undecodableReply(correlationId, err);
      return;
    }
    // Match on the correlation_id property first (Celery's _get_message_task_id).
    const id = correlationId ?? meta.task_id;
    // A later reply that decodes replaces the error of an earlier one.
    if (this.#undecodable.size > 0) this.#undecodable.delete(id);
    const ready = isReady(meta.status);
    const taken = this.#notify(id, meta);
    if (taken && ready) {
      // Consumed by a wait, as a message read from a task queue: nothing stays buffered.
      this.#buffer.delete(id);
      return;
    }
    // A late non-ready state never hides a ready one: only then is the previous one read.
    if (ready || !isReady(this.#buffer.get(id)?.status ?? PENDING)) this.#buffer.set(id, meta);
  }

  /** Calls the listeners of `id`; true when one took the state. */
  #notify(id: string, meta: TaskMeta | Error): boolean {
    const entry = this.#listeners.get(id);
    let taken = false;
    if (typeof entry === 'function') taken = entry(meta, id);
    // A copy: a listener may remove itself (or another) while the list is walked.
    else if (entry !== undefined) for (const l of [...entry]) taken = l(meta, id) || taken;
    return taken;
  }

  /**
   * A reply that could not be decoded: already gone from the queue (no-ack). Its error
   * rejects the waits for its correlation_id, else is kept for the next one and reported.
   */
  #undecodableReply(correlationId: string | undefined, err: unknown): void {
    this.droppedMessages++;
    const why = err instanceof Error ? err.message : String(err);
    const error =
      err instanceof DecodeError
        ? err
        : new DecodeError(`Malformed reply on ${this.oid}: ${why}`, { cause: err });
    if (correlationId !== undefined) {
      // Kept until a good reply for the id replaces it: the no-ack reply is gone, so a later
      // wait for the id would otherwise run to its deadline. Settled: unread, its stack would
      // keep the message body and the decoder's buffers.
      this.#undecodable.set(correlationId, settleStack(error));
      this.#notify(correlationId, error);
    }
    // Reported even when a wait received it: a dropped reply means a misconfigured peer.
    this.reportError(
      new DecodeError(`Dropped a reply on ${this.oid} (correlation_id ${correlationId ?? 'none'}): ${why}`, {
        cause: err,
        code: error.code,
      }),
    );
  }

  /**
   * Registers `listener` for `id`. The common case (one waiter per id, as getMany over
   * thousands of ids registers) keeps the function itself in the map: no array per id.
   */
  #addListener(id: string, listener: Listener): void {
    const entry = this.#listeners.get(id);
    if (entry === undefined) this.#listeners.set(id, listener);
    else if (typeof entry === 'function') this.#listeners.set(id, [entry, listener]);
    else entry.push(listener);
  }

  #removeListener(id: string, listener: Listener): void {
    const entry = this.#listeners.get(id);
    if (entry === undefined) return;
    if (typeof entry === 'function') {
      if (entry === listener) this.#listeners.delete(id);
      return;
    }
    const i = entry.indexOf(listener);
    if (i >= 0) entry.splice(i, 1);
    const [only] = entry;
    if (entry.length === 1 && only !== undefined) this.#listeners.set(id, only);
    else if (entry.length === 0) this.#listeners.delete(id);
  }

  /**
   * Watches for the first reply of `taskId` (any state, or a reply that could not be decoded)
   * without taking it: a later wait or poll still reads it. A reply proves the task message
   * reached a worker, so `Celery.sendTask` resolves on it when it comes before the publisher
   * confirm. `arrived` never rejects; `stop()` ends the watch (idempotent).
   *
   * @param taskId - The task's id (the correlation_id of its replies).
   * @returns The arrival and the way to stop watching.
   * @example
   * ```ts
   * const watch = backend.watchReply(id);
   * try { await Promise.race([confirmed, watch.arrived]); } finally { watch.stop(); }
   * ```
   */
  watchReply(taskId: string): { arrived: Promise<void>; stop: () => void } {
    if (this.#buffer.get(taskId) !== undefined || this.#undecodable.get(taskId) !== undefined) {
      return { arrived: Promise.resolve(), stop: () => undefined };
    }
    let listener: Listener | undefined;
    const arrived = new Promise<void>((resolve) => {
      listener = () => {
        resolve();
        // Not taken: the state stays buffered for the wait that follows the send.
        return false;
      };
      this.#addListener(taskId, listener);
    });
    const stop = (): void => {
      if (listener !== undefined) this.#removeListener(taskId, listener);
      listener = undefined;
    };
    return { arrived, stop };
  }

  /**
   * The latest state received for the task (ready or not), without taking it; never the
   * broker. Rejects with the error of an undecodable reply for it (kept, as a poll keeps).
   */
  protected fetchMeta(taskId: string, _options: GetMetaOptions): Promise<TaskMeta | null> {
    const failed = this.#undecodable.get(taskId);
    if (failed !== undefined) return Promise.reject(failed);
    return Promise.resolve(this.#buffer.get(taskId) ?? null);
  }

  /** Throws the error of an undecodable reply for the id, kept until a good reply comes. */
  #throwUndecodable(taskId: string): void {
    const failed = this.#undecodable.get(taskId);
    if (failed !== undefined) throw failed;
  }

  /** A buffered ready reply (taken unless `noAck: false`), else the first ready one to arrive. */
  protected async receiveReady(taskId: string, ctl: WaitControl, options: WaitForOptions): Promise<TaskMeta> {
    const fail = (err: QueueLostError): void => ctl.cancel(err);
    this.#onLost.add(fail);
    try {
      return await this.#receiveReady(taskId, ctl, options);
    } finally {
      this.#onLost.delete(fail);
    }
  }

  async #receiveReady(taskId: string, ctl: WaitControl, options: WaitForOptions): Promise<TaskMeta> {
    await ctl.race(this.ensureReplyQueue());
    const take = options.noAck ?? true;
    this.#throwUndecodable(taskId);
    const buffered = this.#buffer.get(taskId);
    if (buffered !== undefined) {
      this.cache.set(taskId, buffered);
      if (isReady(buffered.status)) {
        if (take) this.#buffer.delete(taskId);
        return buffered;
      }
    }
    let listener: Listener | undefined;
    try {
      return await ctl.race(
        new Promise<TaskMeta>((resolve, reject) => {
          listener = (meta) => {
            if (meta instanceof Error) {
              reject(meta);
              return false;
            }
            this.cache.set(taskId, meta);
            if (!isReady(meta.status)) {
              ctl.interval();
              return false;
            }
            resolve(meta);
            return take;
          };
          this.#addListener(taskId, listener);
        }),
      );
    } finally {
      if (listener !== undefined) this.#removeListener(taskId, listener);
    }
  }

  /** Buffered ready replies first, then as they arrive; one listener function for every id. */
  protected async *receiveMany(
    taskIds: readonly string[],
    options: ReceiveManyOptions,
  ): AsyncGenerator<[string, TaskMeta], void, undefined> {
    const { signal, noAck, onMessage } = options;
    await this.ensureReplyQueue({ signal });
    const pending = new Set<string>();
    const ready: Array<[string, TaskMeta]> = [];
    for (const id of taskIds) this.#throwUndecodable(id);
    for (const id of taskIds) {
      const m = this.#buffer.get(id);
      if (m !== undefined && isReady(m.status)) {
        if (noAck) this.#buffer.delete(id);
        ready.push([id, m]);
      } else pending.add(id);
    }
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    // The reply queue was lost: replies for the ids still pending may have been in it.
    const fail = (err: QueueLostError): void => {
      if (pending.size > 0) failure ??= err;
      wake?.();
    };
    // One listener for every id (no closure per id: getMany may wait on 100,000 ids).
    const onState: Listener = (meta, id) => {
      if (meta instanceof Error) {
        if (pending.has(id)) failure ??= meta;
        wake?.();
        return false;
      }
      onMessage(meta);
      if (!isReady(meta.status) || !pending.delete(id)) return false;
      ready.push([id, meta]);
      wake?.();
      return noAck;
    };
    const listened = [...pending];
    for (const id of listened) this.#addListener(id, onState);
    const unwatch = onAbort(signal, () => wake?.());
    this.#onLost.add(fail);
    let head = 0;
    try {
      for (;;) {
        while (head < ready.length) {
          const next = ready[head];
          head += 1;
          if (next !== undefined) yield next;
        }
        ready.length = 0;
        head = 0;
        if (failure !== undefined) throw failure;
        if (pending.size === 0 || signal.aborted) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      for (const id of listened) this.#removeListener(id, onState);
      unwatch();
      this.#onLost.delete(fail);
    }
  }

  /**
   * Celery's `destination_for`: `[reply_to, correlation_id or task id]`; no reply_to, no store.
   *
   * @example
   * ```ts
   * backend.destinationFor(id, { reply_to: 'q', correlation_id: id }); // ['q', id]
   * ```
   */
  destinationFor(taskId: string, request?: TaskRequest): [string | null, string] {
    const replyTo =
      typeof request?.reply_to === 'string' && request.reply_to !== '' ? request.reply_to : null;
    const corr =
      typeof request?.correlation_id === 'string' && request.correlation_id !== ''
        ? request.correlation_id
        : taskId;
    return [replyTo, corr];
  }

  #getProducer(): Promise<Producer> {
    if (this.#producer === undefined) {
      const p = this.connection.channel({ confirm: this.confirmPublish }).then((ch: Channel) => {
        const producer = new Producer(ch, {
          serializer: this.serializer,
          autoDeclare: false,
          limits: this.decodeLimits,
        });
        if (this.#producer === p) this.#producerReady = producer;
        return producer;
      });
      this.#producer = p;
      p.catch(() => {
        if (this.#producer === p) this.#producer = undefined;
      });
    }
    return this.#producer;
  }

  /** To the default exchange, routing key = the request's reply_to. */
  protected async publish(
    body: TaskMeta,
    routingKey: string,
    correlationId: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    // The resolved producer is used directly: no extra await per result once it exists.
    const producer = this.#producerReady ?? (await this.#getProducer());
    await producer.publish(body, {
      exchange: '',
      routingKey,
      correlationId,
      serializer: this.serializer,
      label: `result of task ${body.task_id}`,
      deliveryMode: this.deliveryMode,
      ...(this.compression === null ? {} : { compression: this.compression }),
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /** Drops the buffered reply (the reply queue is shared: nothing to purge). */
  protected forgetResult(taskId: string): Promise<void> {
    this.#buffer.delete(taskId);
    this.#undecodable.delete(taskId);
    return Promise.resolve();
  }

  protected async closeResources(): Promise<void> {
    this.connection.off('queueLost', this.#onQueueLost);
    const consumer = await this.#consumer?.catch(() => undefined);
    if (consumer !== undefined) {
      await consumer.cancel().catch(() => undefined);
      await consumer.channel.close().catch(() => undefined);
    }
    const producer = await this.#producer?.catch(() => undefined);
    if (producer !== undefined) {
      producer.close();
      await producer.channel.close().catch(() => undefined);
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * True for a body Celery wrote: every field already there (task_id, status, result,
 * traceback, children). It is used as it is, freshly decoded and owned by nobody else,
 * instead of validateMeta's normalizing copy (one object less per reply).
 */
function isWireMeta(body: unknown): body is TaskMeta {
  if (!isRecord(body)) return false;
  const tb = body['traceback'];
  const children = body['children'];
  return (
    typeof body['task_id'] === 'string' &&
    typeof body['status'] === 'string' &&
    body['status'] !== '' &&
    body['result'] !== undefined &&
    (tb === null || typeof tb === 'string') &&
    (children === null || Array.isArray(children))
  );
}

/** The body as a TaskMeta (see {@link isWireMeta}); anything else goes through validateMeta. */
function asMeta(body: unknown, taskId: string): TaskMeta {
  return isWireMeta(body) ? body : validateMeta(body, taskId);
}
