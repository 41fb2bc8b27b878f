/**
 * The RPC result backend (`rpc://`, Celery 4.x/5.x's `celery.backends.rpc.RPCBackend`): one
 * reply queue per client, results sent to the default exchange with the task message's
 * `reply_to` as routing key (docs/wire.md §6).
 *
 * What Celery 5.2 really declares (rpc.py `binding`, checked with `rabbitmqctl`): the reply
 * queue is named after the app's oid (a UUID string with dashes), `durable: false`,
 * `auto_delete: true`, `x-expires` = result_expires in ms (86 400 000 by default), bound to
 * nothing but the default exchange. Results go out with delivery_mode 1 (the backend's
 * `persistent = False`) unless result_persistent is set, with no mandatory flag.
 *
 * Differences from Celery, on purpose:
 * - The reply consumer starts with the queue declaration (before the first task is sent),
 *   not on the first `get()`, so every reply is received and buffered as it arrives.
 * - Hence `getTaskMeta` never needs basic.get: with a consumer on the queue there is no
 *   backlog to fast-forward (Celery's basic.get only finds messages while its consumer is not
 *   running). It answers from what the consumer received: the latest state for the id
 *   (ready or not, so PROGRESS is visible), else PENDING. `backlogLimit` is accepted and unused.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { ArgumentError, CeleryAmqpError, ConnectionError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import { Connection } from '../kombu/connection.js';
import { Consumer } from '../kombu/consumer.js';
import type { Message } from '../kombu/message.js';
import { Producer } from '../kombu/producer.js';
import { Queue } from '../kombu/queue.js';
import type { RetryPolicy } from '../kombu/retry.js';
import { abortError, withDeadline } from '../kombu/retry.js';
import type {
  GetManyOptions,
  GetMetaOptions,
  ResultBackend,
  StoreOptions,
  TaskMeta,
  TaskRequest,
  WaitOptions,
} from './backend-types.js';
import { DEFAULT_STORE_RETRY_POLICY } from './backend-options.js';
import type { BackendCommonOptions } from './backend-options.js';
import { ResultCache } from './result-cache.js';
import { failureOptions, pendingMeta, resultBody, validateMeta } from './result-meta.js';
import { resolveSettings } from './settings.js';
import { FAILURE, PENDING, STARTED, SUCCESS, isReady } from './states.js';

/**
 * Options of {@link RPCBackend}.
 *
 * @example
 * ```ts
 * new RPCBackend({ connection, settings: { result_expires: 3600 }, bufferMax: 10_000 });
 * ```
 */
export interface RPCBackendOptions extends BackendCommonOptions {
  /** Reply queue name (Celery's `app.oid`). @default a random UUID */
  oid?: string | undefined;
  /** delivery_mode 2 instead of 1. @default settings.result_persistent when given, else false (Celery's rpc) */
  persistent?: boolean | undefined;
  /** Result serializer. @default settings.result_serializer ('json') */
  serializer?: string | undefined;
  /** Reply queue `x-expires` in ms, null for none. @default settings.result_expires (1 day) */
  expires?: number | null | undefined;
  /** Most states kept for ids nobody waits for (LRU; Celery's MESSAGE_BUFFER_MAX). @default 8192 */
  bufferMax?: number | undefined;
}

/** How often onInterval fires while waiting (Celery's drainer interval). */
const INTERVAL_MS = 1000;

/** Called with each state received for an id (and the id, so one function can serve many). */
type Listener = (meta: TaskMeta, id: string) => void;

/**
 * Celery's RPC result backend. Implements {@link ResultBackend}, so AsyncResult, GroupResult
 * and ResultSet (joinNative over {@link getMany}) work with it unchanged.
 *
 * Client side: {@link ensureReplyQueue} (called by `Celery.sendTask` before publishing)
 * declares the reply queue and starts the one no-ack consumer; replies are matched by
 * correlation_id (fallback: body task_id). Worker side: {@link storeResult} publishes to the
 * request's reply_to.
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
export class RPCBackend implements ResultBackend {
  /** True: GroupResult.joinNative uses getMany. */
  readonly supportsNativeJoin = true;
  /** True: the reply queue has x-expires. */
  readonly supportsAutoexpire = true;
  /** The connection used. */
  readonly connection: Connection;
  /** The reply queue name (Celery's `app.oid`). */
  readonly oid: string;
  /** Result serializer. @default 'json' */
  readonly serializer: string;
  /** 2 when persistent, else 1. @default 1 */
  readonly deliveryMode: 1 | 2;
  /** Reply queue x-expires in ms, or null. @default 86_400_000 */
  readonly expires: number | null;
  /** The reply queue declaration (Celery's `binding`). */
  readonly binding: Queue;
  /** Replies that were not valid result messages (undecodable or without status). */
  droppedMessages = 0;

  readonly #ownsConnection: boolean;
  readonly #accept: readonly string[];
  readonly #compression: string | null;
  readonly #confirm: boolean;
  readonly #retryPolicy: RetryPolicy;
  readonly #maxBytes: number | undefined;
  readonly #states: ResultCache<TaskMeta>;
  readonly #listeners = new Map<string, Listener | Listener[]>();
  readonly #anyListeners = new Set<Listener>();
  readonly #closers = new Set<(err: Error) => void>();
  #consumer: Promise<Consumer> | undefined;
  #producer: Promise<Producer> | undefined;
  #producerReady: Producer | undefined;
  #closed = false;

  constructor(options: RPCBackendOptions = {}) {
    const settings = resolveSettings(options.settings ?? {});
    const conn = options.connection ?? 'memory://';
    this.#ownsConnection = typeof conn === 'string';
    this.connection = typeof conn === 'string' ? new Connection(conn) : conn;
    this.oid = options.oid ?? randomUUID();
    this.serializer = options.serializer ?? settings.serializer;
    const persistent =
      options.persistent ??
      options.settings?.result_persistent ??
      options.settings?.CELERY_RESULT_PERSISTENT ??
      false;
    this.deliveryMode = persistent ? 2 : 1;
    this.expires = options.expires === undefined ? settings.expiresMs : options.expires;
    this.#accept = [...new Set([...settings.accept, this.serializer])];
    this.#compression = settings.compression;
    this.#confirm = options.confirmPublish ?? true;
    this.#retryPolicy = options.retryPolicy ?? DEFAULT_STORE_RETRY_POLICY;
    this.#maxBytes = options.maxBodyBytes;
    const bufferMax = options.bufferMax ?? 8192;
    if (!Number.isSafeInteger(bufferMax) || bufferMax < 1) throw new ArgumentError('bufferMax must be >= 1');
    this.#states = new ResultCache<TaskMeta>(bufferMax);
    this.binding = new Queue(this.oid, {
      durable: false,
      autoDelete: true,
      ...(this.expires === null || this.expires <= 0 ? {} : { expires: this.expires }),
    });
  }

  /** Celery's `as_uri()`. */
  asUri(): string {
    return 'rpc://';
  }

  /**
   * Declares the reply queue and starts the reply consumer (once; later calls wait for the
   * first). Celery's `on_task_call`: call it before sending a task so no reply is lost.
   *
   * @example
   * ```ts
   * await backend.ensureReplyQueue({ timeout: 5000 });
   * ```
   */
  ensureReplyQueue(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new ConnectionError('RPCBackend closed'));
    if (this.#consumer === undefined) {
      const started = this.#startConsumer();
      this.#consumer = started;
      // A failed start can be retried by the next call.
      started.catch(() => {
        if (this.#consumer === started) this.#consumer = undefined;
      });
    }
    return withDeadline(this.#consumer, options).then(() => undefined);
  }

  async #startConsumer(): Promise<Consumer> {
    const channel = await this.connection.channel();
    const consumer = new Consumer(channel, {
      queues: [this.binding],
      noAck: true,
      accept: this.#accept,
      ...(this.#maxBytes === undefined ? {} : { maxBytes: this.#maxBytes }),
      onMessage: (m) => this.#onReply(m),
      tagPrefix: 'rpc.',
    });
    try {
      await consumer.consume({ noAck: true });
    } catch (err) {
      await channel.close().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await channel.close().catch(() => undefined);
      throw new ConnectionError('RPCBackend closed');
    }
    return consumer;
  }

  #onReply(message: Message): void {
    const correlationId = message.properties.correlationId;
    let meta: TaskMeta | null;
    try {
      meta = asMeta(message.payload, correlationId ?? '?');
    } catch {
      meta = null;
    }
    if (meta === null) {
      this.droppedMessages++;
      return;
    }
    // Match on the correlation_id property first (Celery's _get_message_task_id).
    const id = correlationId ?? meta.task_id;
    const ready = isReady(meta.status);
    // A late non-ready state never hides a ready one: only then is the previous one read.
    if (ready || !isReady(this.#states.get(id)?.status ?? PENDING)) this.#states.set(id, meta);
    if (this.#anyListeners.size > 0) for (const l of this.#anyListeners) l(meta, id);
    const entry = this.#listeners.get(id);
    if (entry === undefined) return;
    if (typeof entry === 'function') entry(meta, id);
    // A copy: a listener may remove itself (or another) while the list is walked.
    else for (const l of [...entry]) l(meta, id);
  }

  /**
   * Registers `listener` for `id`. The common case (one waiter per id, as getMany over
   * thousands of ids registers) keeps the function itself in the map: no Set per id.
   */
  #listen(id: string, listener: Listener): () => void {
    this.#addListener(id, listener);
    return () => this.#removeListener(id, listener);
  }

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
    if (entry.length === 1) this.#listeners.set(id, entry[0] as Listener);
    else if (entry.length === 0) this.#listeners.delete(id);
  }

  /**
   * The latest state received for `taskId` (ready or not), else PENDING. Never touches the
   * broker: the reply consumer already received whatever is in the queue (see the module doc).
   *
   * @example
   * ```ts
   * (await backend.getTaskMeta(id)).status; // 'PENDING' | 'PROGRESS' | 'SUCCESS' | ...
   * ```
   */
  async getTaskMeta(taskId: string, options: GetMetaOptions = {}): Promise<TaskMeta> {
    if (options.signal?.aborted === true) throw abortError(options.signal);
    const meta = this.#states.get(taskId);
    if (meta !== undefined) return meta;
    return pendingMeta(taskId);
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

  /**
   * Waits for a READY state of `taskId` (non-ready states only call onInterval). A reply
   * that arrived before the call is taken from the buffer.
   *
   * @throws TimeoutError ("The operation timed out."), AbortError, ConnectionError on close.
   * @example
   * ```ts
   * const meta = await backend.waitFor(id, { timeout: 10_000 });
   * ```
   */
  async waitFor(taskId: string, options: WaitOptions = {}): Promise<TaskMeta> {
    const waitOpts = { timeout: options.timeout, signal: options.signal };
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
    await this.ensureReplyQueue(compact(waitOpts));
    if (this.#closed) throw new ConnectionError('RPCBackend closed');
    const buffered = this.#states.get(taskId);
    if (options.cache !== false && buffered !== undefined && isReady(buffered.status)) return buffered;
    let stop: () => void = () => undefined;
    const p = new Promise<TaskMeta>((resolve, reject) => {
      const unlisten = this.#listen(taskId, (meta) => {
        if (isReady(meta.status)) {
          stop();
          resolve(meta);
        } else options.onInterval?.();
      });
      const timer =
        options.onInterval === undefined ? undefined : setInterval(() => options.onInterval?.(), INTERVAL_MS);
      const onClose = (err: Error): void => {
        stop();
        reject(err);
      };
      this.#closers.add(onClose);
      stop = () => {
        unlisten();
        if (timer !== undefined) clearInterval(timer);
        this.#closers.delete(onClose);
      };
    });
    const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
    return withDeadline(p, compact({ timeout: remaining, signal: options.signal }), () => stop());
  }

  /**
   * Yields `[taskId, meta]` as each task becomes READY: buffered ones first, then in arrival
   * order; each id once.
   *
   * @throws TimeoutError for the whole call's deadline, AbortError, ConnectionError on close.
   * @example
   * ```ts
   * for await (const [id, meta] of backend.getMany(ids, { timeout: 30_000 })) console.log(id, meta.result);
   * ```
   */
  async *getMany(
    taskIds: Iterable<string>,
    options: GetManyOptions = {},
  ): AsyncIterableIterator<[string, TaskMeta]> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
    const pending = new Set(taskIds);
    if (pending.size === 0) return;
    await this.ensureReplyQueue(compact({ timeout: options.timeout, signal: options.signal }));
    if (this.#closed) throw new ConnectionError('RPCBackend closed');
    const ready: Array<[string, TaskMeta]> = [];
    for (const id of pending) {
      const m = this.#states.get(id);
      if (m !== undefined && isReady(m.status)) ready.push([id, m]);
    }
    for (const [id] of ready) pending.delete(id);
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const onAny: Listener = (meta) => {
      options.onMessage?.(meta);
    };
    // One listener for every id (no closure per id: getMany may wait on 100,000 ids).
    const onState: Listener = (meta, id) => {
      if (!isReady(meta.status) || !pending.delete(id)) return;
      ready.push([id, meta]);
      wake?.();
    };
    const listened = [...pending];
    for (const id of listened) this.#addListener(id, onState);
    const onClose = (err: Error): void => {
      failure = err;
      wake?.();
    };
    this.#closers.add(onClose);
    if (options.onMessage !== undefined) this.#anyListeners.add(onAny);
    const timer =
      options.onInterval === undefined ? undefined : setInterval(() => options.onInterval?.(), INTERVAL_MS);
    try {
      for (;;) {
        while (ready.length > 0) yield ready.shift() as [string, TaskMeta];
        if (pending.size === 0) return;
        if (failure !== undefined) throw failure;
        const next = new Promise<void>((resolve) => {
          wake = resolve;
        });
        const remaining = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
        await withDeadline(next, compact({ timeout: remaining, signal: options.signal }));
        wake = undefined;
      }
    } finally {
      for (const id of listened) this.#removeListener(id, onState);
      this.#anyListeners.delete(onAny);
      this.#closers.delete(onClose);
      if (timer !== undefined) clearInterval(timer);
    }
  }

  /**
   * Celery's `destination_for`: `[reply_to, correlation_id or task id]`.
   *
   * @example
   * ```ts
   * backend.destinationFor(id, { reply_to: 'q', correlation_id: id }); // ['q', id]
   * ```
   */
  destinationFor(taskId: string, request: TaskRequest | undefined): [string | null, string] {
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
      const p = this.connection.channel({ confirm: this.#confirm }).then((ch: Channel) => {
        const producer = new Producer(ch, { serializer: this.serializer, autoDeclare: false });
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

  /**
   * Publishes a state to the request's reply_to (default exchange), with correlation_id =
   * the request's correlation_id (else the task id). Nothing is published without a
   * reply_to. Resolves with `result` once the broker confirmed it.
   *
   * @example
   * ```ts
   * await backend.storeResult(request.id, 5, 'SUCCESS', { request });
   * ```
   */
  async storeResult(
    taskId: string,
    result: unknown,
    status: string,
    options: StoreOptions = {},
  ): Promise<unknown> {
    if (this.#closed) throw new ConnectionError('RPCBackend closed');
    const [routingKey, correlationId] = this.destinationFor(taskId, options.request);
    if (routingKey === null) return result;
    const body = resultBody(taskId, result, status, options.traceback ?? null, options.request);
    // The resolved producer is used directly: no extra await per result once it exists.
    const producer = this.#producerReady ?? (await this.#getProducer());
    await producer.publish(body, {
      exchange: '',
      routingKey,
      correlationId,
      serializer: this.serializer,
      deliveryMode: this.deliveryMode,
      ...(this.#compression === null ? {} : { compression: this.#compression }),
      retry: true,
      retryPolicy: this.#retryPolicy,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return result;
  }

  /**
   * Stores SUCCESS.
   *
   * @example
   * ```ts
   * await backend.markAsDone(id, 5, request);
   * ```
   */
  markAsDone(taskId: string, result: unknown, request?: TaskRequest): Promise<unknown> {
    return this.storeResult(taskId, result, SUCCESS, compact({ request }));
  }

  /**
   * Stores FAILURE with the error (as Celery's exception dict) and a traceback:
   * `options.traceback`, else the error's stack (`null` stores none).
   *
   * @example
   * ```ts
   * await backend.markAsFailure(id, err, { request, traceback: 'Traceback ...' });
   * ```
   */
  markAsFailure(taskId: string, error: unknown, options: StoreOptions = {}): Promise<unknown> {
    return this.storeResult(taskId, error, FAILURE, failureOptions(error, options));
  }

  /**
   * Stores STARTED with `{pid, hostname}` (track_started).
   *
   * @param request - The task request: without its reply_to nothing is published. @default undefined
   * @example
   * ```ts
   * await backend.markAsStarted(id, { pid: process.pid, hostname: 'node' }, request);
   * ```
   */
  markAsStarted(taskId: string, meta: unknown = {}, request?: TaskRequest): Promise<unknown> {
    return this.storeResult(taskId, meta, STARTED, compact({ request }));
  }

  /**
   * Forgets the buffered state of a task (the reply queue is shared, nothing to purge).
   *
   * @example
   * ```ts
   * await backend.forget(id);
   * ```
   */
  forget(taskId: string): Promise<void> {
    this.#states.delete(taskId);
    return Promise.resolve();
  }

  /** Not supported by rpc:// (Celery raises NotImplementedError). */
  saveGroup(): Promise<unknown> {
    return Promise.reject(unsupported('saveGroup'));
  }

  /** Not supported by rpc:// (Celery raises NotImplementedError). */
  restoreGroup(): Promise<null> {
    return Promise.reject(unsupported('restoreGroup'));
  }

  /** Not supported by rpc:// (Celery raises NotImplementedError). */
  deleteGroup(): Promise<void> {
    return Promise.reject(unsupported('deleteGroup'));
  }

  /**
   * Stops the reply consumer, rejects pending waits with ConnectionError, and closes the
   * connection if the backend opened it. Idempotent.
   *
   * @example
   * ```ts
   * await backend.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = new ConnectionError('RPCBackend closed');
    for (const c of [...this.#closers]) c(err);
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
    if (this.#ownsConnection) await this.connection.close();
  }
}

function unsupported(what: string): CeleryAmqpError {
  return new CeleryAmqpError(`${what} is not supported by this backend.`, 'UNSUPPORTED');
}

/** Drops undefined values (exactOptionalPropertyTypes). */
function compact<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/**
 * The body as a TaskMeta. A body Celery wrote has every field already (task_id, status,
 * result, traceback, children): it is used as it is, freshly decoded and owned by nobody
 * else, instead of validateMeta's normalizing copy (one object less per reply). Anything
 * else goes through validateMeta.
 */
function asMeta(body: unknown, taskId: string): TaskMeta {
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    const tb = b['traceback'];
    const children = b['children'];
    if (
      typeof b['task_id'] === 'string' &&
      typeof b['status'] === 'string' &&
      b['status'] !== '' &&
      b['result'] !== undefined &&
      (tb === null || typeof tb === 'string') &&
      (children === null || Array.isArray(children))
    ) {
      return b as unknown as TaskMeta;
    }
  }
  return validateMeta(body, taskId);
}
