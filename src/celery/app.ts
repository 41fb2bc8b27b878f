/**
 * The Celery app (Python's `celery.Celery`, client side): settings, a broker connection, a
 * result backend, and {@link Celery.sendTask} in message protocol v2 (or v1, `task_protocol: 1`).
 *
 * Routing as Celery 5.2 does it by default: the task queue is declared as kombu's
 * `Queue(name, Exchange(name, 'direct'), routing_key=name)` (durable queue, durable direct
 * exchange of the same name, bound by the name), and the message is published to the default
 * exchange `''` with the queue name as routing key (Celery's "anon-exchange" shortcut for
 * direct queues). A Python worker declaring the same queue gets no 406. A queue whose exchange
 * is not direct is published to through that exchange, as Celery does. Celery 5.5/5.6's queue
 * types (quorum queues) and native delayed delivery are in task-queues.ts and docs/queues.md.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { ArgumentError, ChannelError, CeleryAmqpError, ConnectionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { consoleLogger } from '../logger.js';
import { Connection } from '../kombu/connection.js';
import { declareNativeDelayedDelivery } from '../kombu/native-delayed-delivery.js';
import { Producer } from '../kombu/producer.js';
import type { Queue } from '../kombu/queue.js';
import type { FieldTable } from '../transport/types.js';
import { resolveBrokerUrl } from '../transport/url.js';
import type { ResultBackend } from './backend-types.js';
import { AMQPBackend } from './amqp-backend.js';
import { AsyncResult } from './async-result.js';
import { BaseBackend } from './base-backend.js';
import { Control } from './control.js';
import { EventDispatcher, taskSentFields } from './events.js';
import { RPCBackend } from './rpc-backend.js';
import { compressionMime } from './settings.js';
import type { CelerySettings } from './settings.js';
import { encodeTaskMessage, encodeTaskMessageV1, sentHeaders } from './task-message.js';
import type { EncodedTaskMessage, EncodedTaskMessageV1, TaskMessageInput } from './task-message.js';
import { TaskQueues, checkQueueType, taskRoute } from './task-queues.js';
import type { QueueType, TaskQueueSettings } from './task-queues.js';

/**
 * Task-sending settings, with Celery's names.
 *
 * @example
 * ```ts
 * new Celery({ settings: { task_default_queue: 'math', task_serializer: 'msgpack' } });
 * ```
 */
export interface AppSettings extends TaskQueueSettings {
  /** Task body serializer. @default 'json' */
  task_serializer: string;
  /**
   * Task body compression (a kombu name such as `zlib`, `bzip2`, `zstd`, or a MIME type), or
   * null; `CELERY_MESSAGE_COMPRESSION` is its Celery 3.1 name. @default null
   */
  task_compression: string | null;
  /** Priority when sendTask gives none, or null. @default null */
  task_default_priority: number | null;
  /** 1 transient, 2 persistent task messages. @default 2 */
  task_default_delivery_mode: 1 | 2 | 'transient' | 'persistent';
  /** Wait for publisher confirms when sending. @default true */
  task_publish_confirm: boolean;
  /** Send a `task-sent` event for every task sent (Celery's setting). @default false */
  task_send_sent_event: boolean;
  /**
   * Task message protocol: 2 (Celery 4+), or 1 for Celery 3.1 workers (a dict body, as
   * 3.1's `publish_task` sends; with `task_serializer: 'pickle'` for 3.1's default). Celery 4
   * and 5 workers read both. @default 2
   */
  task_protocol: 1 | 2;
  /**
   * Type of the native delayed delivery queues `celery_delayed_0..27` (Celery 5.5), used
   * when the app has a quorum queue. @default 'quorum'
   */
  broker_native_delayed_delivery_queue_type: QueueType;
}

/**
 * Every setting the app takes: task settings plus the result backend's (settings.ts).
 *
 * @example
 * ```ts
 * const s: Partial<CeleryAppSettings> = { task_default_queue: 'q', result_expires: 3600 };
 * ```
 */
export type CeleryAppSettings = AppSettings & CelerySettings;

/**
 * Options of {@link Celery}.
 *
 * @example
 * ```ts
 * new Celery({ broker: 'amqp://guest:guest@127.0.0.1:5672//', backend: 'rpc://' });
 * ```
 */
export interface CeleryOptions {
  /**
   * Broker URL or a kombu Connection (kept open on close). `memory://` (the embedded broker)
   * only when named. @default `CELERY_BROKER_URL`, else 'amqp://guest:guest@localhost:5672//' (as Celery)
   */
  broker?: string | Connection | undefined;
  /** 'rpc://', 'amqp://' (the broker) or 'amqp://host...', or a ResultBackend instance (kept open on close). @default 'rpc://' */
  backend?: string | ResultBackend | undefined;
  /** Celery settings (task_* here, result_* for the backend). @default {} */
  settings?: Partial<CeleryAppSettings> | undefined;
  /** Where the app's warnings go. @default consoleLogger */
  logger?: Logger | undefined;
}

/**
 * Options of {@link Celery.sendTask}, spelled and measured as Celery's `apply_async`:
 * `countdown` and `expires` in **seconds** (or a Date), time limits in seconds.
 *
 * @example
 * ```ts
 * app.sendTask('add', [1, 2], {}, { queue: 'math', countdown: 10, expires: 60, priority: 5 });
 * ```
 */
export interface SendTaskOptions {
  /** Queue name. @default settings.task_default_queue */
  queue?: string | undefined;
  /** Routing key (with `exchange`). @default the queue name */
  routingKey?: string | undefined;
  /** Publish to this exchange instead of `''`. @default '' (Celery's direct shortcut) */
  exchange?: string | undefined;
  /**
   * Delay in seconds before the worker runs the task (becomes the `eta`). With a quorum queue
   * in the app and a topic/fanout queue exchange, the task waits in the broker's native
   * delayed delivery ladder (Celery 5.5). @default undefined
   */
  countdown?: number | undefined;
  /** Earliest run time; ignored when `countdown` is given. @default undefined */
  eta?: Date | undefined;
  /** Expiry: seconds from now, or a Date. @default undefined */
  expires?: number | Date | undefined;
  /** 0-255. @default settings.task_default_priority */
  priority?: number | undefined;
  /** @default a random UUID */
  taskId?: string | undefined;
  /** Extra message headers. @default {} */
  headers?: FieldTable | undefined;
  /** Hard time limit in seconds (Celery's `time_limit`). @default undefined */
  timeLimit?: number | undefined;
  /** Soft time limit in seconds (Celery's `soft_time_limit`). @default undefined */
  softTimeLimit?: number | undefined;
  /** @default settings.task_serializer */
  serializer?: string | undefined;
  /** Don't declare the reply queue and tell the worker not to store. @default false */
  ignoreResult?: boolean | undefined;
  /**
   * Stamps, by stamp name (Celery 5.3's `stamped_headers` and the stamps themselves, as
   * `apply_async(stamped_headers=[...], **stamps)` sends them): the `stamped_headers` and
   * `stamps` headers. Protocol 2 only. @default undefined (not sent)
   */
  stamps?: Readonly<Record<string, unknown>> | undefined;
  /** Celery 5.4's `replaced_task_nesting` header. Protocol 2 only. @default undefined (not sent) */
  replacedTaskNesting?: number | undefined;
  /** @default null */
  groupId?: string | undefined;
  /** Cancels the send. @default undefined */
  signal?: AbortSignal | undefined;
}

const TASK_KEYS = new Set<string>([
  'task_default_queue',
  'task_default_exchange',
  'task_default_exchange_type',
  'task_default_routing_key',
  'task_serializer',
  'task_compression',
  'task_default_priority',
  'task_default_delivery_mode',
  'task_publish_confirm',
  'task_send_sent_event',
  'task_protocol',
  'task_default_queue_type',
  'task_create_missing_queue_type',
  'task_create_missing_queue_exchange_type',
  'broker_native_delayed_delivery_queue_type',
]);

/**
 * The backend for a `backend` URL: `rpc://`, or `amqp://` (Celery 4.x's AMQP backend on the
 * app's broker connection; a URL with a host opens its own connection).
 *
 * @throws ArgumentError for any other scheme.
 */
function backendFromUrl(url: string, broker: Connection, settings: Record<string, unknown>): ResultBackend {
  if (/^rpc:(\/\/)?$/.test(url)) return new RPCBackend({ connection: broker, settings });
  if (/^amqps?:/.test(url)) {
    const sameBroker = /^amqps?:(\/\/)?$/.test(url);
    return new AMQPBackend({ connection: sameBroker ? broker : url, settings });
  }
  throw new ArgumentError(
    `backend ${JSON.stringify(url)}: use 'rpc://', 'amqp://...' or a ResultBackend instance`,
  );
}

/** An accept list given as a list or, as Celery's environment form, comma-separated text. */
function acceptList(value: readonly string[] | string): string[] {
  return typeof value === 'string' ? value.split(',').map((v) => v.trim()) : [...value];
}

/**
 * `task_compression`, or its 3.1 name `CELERY_MESSAGE_COMPRESSION`, checked (as given: the
 * producer maps names to MIME types).
 */
function taskCompression(modern: unknown, legacy: unknown): string | null {
  if (modern !== undefined && legacy !== undefined && modern !== legacy) {
    throw new ArgumentError(
      'conflicting settings task_compression and CELERY_MESSAGE_COMPRESSION: give only one',
    );
  }
  const value = modern ?? legacy ?? null;
  compressionMime(
    value,
    modern === undefined && legacy !== undefined ? 'CELERY_MESSAGE_COMPRESSION' : 'task_compression',
  );
  return typeof value === 'string' ? value : null;
}

/** `task_protocol`, checked. */
function taskProtocol(value: unknown): 1 | 2 {
  if (value === undefined || value === 2) return 2;
  if (value === 1) return 1;
  throw new ArgumentError(
    `task_protocol must be 1 or 2 (Celery's task message protocols), got ${String(value)}`,
  );
}

/**
 * A Celery app: sends tasks by name to a (Python or Node) worker and returns AsyncResults.
 *
 * @example
 * ```ts
 * const app = new Celery({ broker: 'amqp://guest:guest@127.0.0.1:5672//', backend: 'rpc://' });
 * const result = await app.sendTask<number>('tasks.add', [2, 3]); // the handle, once sent
 * console.log(await result.get({ timeout: 10_000 })); // 5
 * await app.close();
 * ```
 */
export class Celery {
  /** The broker connection. */
  readonly connection: Connection;
  /** The result backend. */
  readonly backend: ResultBackend;
  /** This client's id; tasks carry it as reply_to (Celery's `app.thread_oid`). */
  readonly oid: string;
  /** Task settings in effect. */
  readonly conf: Readonly<AppSettings>;
  /**
   * The `accept_content` setting (or `CELERY_ACCEPT_CONTENT`) as given, which a Node Worker
   * on this app accepts task messages by, as Celery's consumer does; undefined when unset
   * (the Worker then accepts every registered serializer but pickle). @default undefined
   */
  readonly acceptContent: readonly string[] | undefined;

  readonly #ownsConnection: boolean;
  readonly #ownsBackend: boolean;
  readonly #queues: TaskQueues;
  readonly #logger: Logger;
  readonly #directWarned = new Set<string>();
  #producer: Promise<Producer> | undefined;
  #closed = false;
  #control: Control | undefined;
  #sentEvents: EventDispatcher | undefined;

  constructor(options: CeleryOptions = {}) {
    const all: Record<string, unknown> = { ...(options.settings ?? {}) };
    const resultSettings: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(all)) if (!TASK_KEYS.has(k)) resultSettings[k] = v;
    const s = options.settings ?? {};
    const queue = s.task_default_queue ?? 'celery';
    this.conf = Object.freeze({
      task_default_queue: queue,
      task_default_exchange: s.task_default_exchange ?? queue,
      task_default_exchange_type: s.task_default_exchange_type ?? 'direct',
      task_default_routing_key: s.task_default_routing_key ?? queue,
      task_serializer: s.task_serializer ?? 'json',
      task_compression: taskCompression(s.task_compression, s.CELERY_MESSAGE_COMPRESSION),
      task_default_priority: s.task_default_priority ?? null,
      task_default_delivery_mode: s.task_default_delivery_mode ?? 2,
      task_publish_confirm: s.task_publish_confirm ?? true,
      task_send_sent_event: s.task_send_sent_event ?? false,
      task_protocol: taskProtocol(s.task_protocol),
      task_default_queue_type: checkQueueType(
        s.task_default_queue_type ?? 'classic',
        'task_default_queue_type',
      ),
      task_create_missing_queue_type: checkQueueType(
        s.task_create_missing_queue_type ?? 'classic',
        'task_create_missing_queue_type',
      ),
      task_create_missing_queue_exchange_type: s.task_create_missing_queue_exchange_type ?? null,
      broker_native_delayed_delivery_queue_type: checkQueueType(
        s.broker_native_delayed_delivery_queue_type ?? 'quorum',
        'broker_native_delayed_delivery_queue_type',
      ),
    });
    this.#queues = new TaskQueues(this.conf);
    this.#logger = options.logger ?? consoleLogger;
    const accept = s.accept_content ?? s.CELERY_ACCEPT_CONTENT;
    this.acceptContent = accept === undefined ? undefined : Object.freeze(acceptList(accept));
    const broker = options.broker;
    this.#ownsConnection = !(broker instanceof Connection);
    this.connection = broker instanceof Connection ? broker : new Connection(resolveBrokerUrl(broker));
    const backend = options.backend ?? 'rpc://';
    if (typeof backend === 'string') {
      this.backend = backendFromUrl(backend, this.connection, resultSettings);
      this.#ownsBackend = true;
    } else {
      this.backend = backend;
      this.#ownsBackend = false;
    }
    this.oid = this.backend instanceof RPCBackend ? this.backend.oid : randomUUID();
  }

  /**
   * The task queue as Celery declares it (task-queues.ts): durable, bound to the durable
   * exchange of the same name (the default queue uses task_default_exchange /
   * task_default_routing_key), a quorum queue when `task_default_queue_type` (the default
   * queue) or `task_create_missing_queue_type` (any other) says so.
   *
   * @example
   * ```ts
   * await app.taskQueue('celery').bind(app.connection).declare();
   * ```
   */
  taskQueue(name: string): Queue {
    return this.#queues.get(name);
  }

  /**
   * The first quorum queue among the queues this app knows (the default queue and every
   * queue used so far), or undefined: Celery's `detect_quorum_queues`. When there is one, a
   * worker uses a per-consumer prefetch and countdown/eta tasks to topic or fanout queues
   * go through native delayed delivery.
   *
   * @example
   * ```ts
   * new Celery({ settings: { task_default_queue_type: 'quorum' } }).quorumQueue(); // 'celery'
   * ```
   */
  quorumQueue(): string | undefined {
    return this.#queues.quorumQueue();
  }

  #getProducer(): Promise<Producer> {
    if (this.#producer === undefined) {
      const p = this.connection
        .channel({ confirm: this.conf.task_publish_confirm })
        .then((ch) => new Producer(ch, { serializer: this.conf.task_serializer, autoDeclare: false }));
      this.#producer = p;
      p.catch(() => {
        if (this.#producer === p) this.#producer = undefined;
      });
    }
    return this.#producer;
  }

  /**
   * Sends a task by name (protocol v2, or v1 per `task_protocol`) and resolves with its result handle once the broker
   * has the task message (publisher confirms) or, on rpc://, once the task's first reply has
   * arrived, whichever comes first (the reply stays for `get()`); a publish refused or failed
   * before either rejects. The reply
   * queue is declared before the publish (rpc://, the backend's `onTaskCall`), so no result
   * can arrive before it exists. `countdown` and `expires` are seconds, as in `apply_async`.
   *
   * @typeParam T - The task's return type, as `result.get()` resolves it (unchecked). @default unknown
   * @throws ArgumentError for bad arguments; ConnectionError once the app is closed;
   *   ConnectionError / ChannelError when the publish fails.
   * @example
   * ```ts
   * const r = await app.sendTask<number>('tasks.add', [2, 3], {}, { queue: 'math', countdown: 10 });
   * const sum = await r.get({ timeout: 30_000 }); // 5, 10 s later
   * ```
   */
  async sendTask<T = unknown>(
    name: string,
    args: readonly unknown[] = [],
    kwargs: Readonly<Record<string, unknown>> = {},
    options: SendTaskOptions = {},
  ): Promise<AsyncResult<T>> {
    if (this.#closed)
      throw new ConnectionError('The Celery app is closed', {
        code: 'CONNECTION_CLOSED',
        recoverable: false,
      });
    const ignoreResult = options.ignoreResult ?? false;
    const input: TaskMessageInput = {
      task: name,
      args,
      kwargs,
      id: options.taskId,
      replyTo: this.oid,
      countdown: options.countdown,
      eta: options.eta,
      expires: options.expires,
      timeLimit: options.timeLimit,
      softTimeLimit: options.softTimeLimit,
      groupId: options.groupId,
      ignoreResult,
      stamps: options.stamps,
      replacedTaskNesting: options.replacedTaskNesting,
      headers: options.headers,
    };
    const message = this.conf.task_protocol === 1 ? encodeTaskMessageV1(input) : encodeTaskMessage(input);
    await this.#publish(message, ignoreResult, options);
    return new AsyncResult<T>(message.properties.correlationId, this.backend);
  }

  async #publish(
    message: EncodedTaskMessage | EncodedTaskMessageV1,
    ignoreResult: boolean,
    options: SendTaskOptions,
  ): Promise<void> {
    const expiration = 'expiration' in message.properties ? message.properties.expiration : undefined;
    const signal = options.signal === undefined ? {} : { signal: options.signal };
    if (!ignoreResult && this.backend instanceof BaseBackend) await this.backend.onTaskCall(signal);
    const queueName = options.queue ?? this.conf.task_default_queue;
    const queue = this.taskQueue(queueName);
    const route = taskRoute(queue, options, this.#nativeDelay(queue, options));
    const producer = await this.#getProducer();
    const priority = options.priority ?? this.conf.task_default_priority;
    // On rpc:// the task's first reply proves the worker has the message; the confirm of a
    // persistent message can come after it (the broker confirms once it is on disk).
    const reply =
      ignoreResult || !this.conf.task_publish_confirm || !(this.backend instanceof RPCBackend)
        ? undefined
        : this.backend.watchReply(message.properties.correlationId);
    try {
      const sent = producer.publish(message.body, {
        exchange: route.exchange,
        routingKey: route.routingKey,
        serializer: options.serializer ?? this.conf.task_serializer,
        ...(this.conf.task_compression === null ? {} : { compression: this.conf.task_compression }),
        deliveryMode: this.conf.task_default_delivery_mode,
        ...(priority === null ? {} : { priority }),
        headers: message.headers,
        correlationId: message.properties.correlationId,
        replyTo: message.properties.replyTo,
        ...(expiration === undefined ? {} : { expiration }),
        declare: route.declare,
        ...signal,
      });
      if (reply === undefined) await sent;
      else {
        // Once the reply is in, the confirm says nothing more about this task: a later
        // failure (the connection lost before it came) is observed, not reported.
        sent.catch(() => undefined);
        await Promise.race([sent, reply.arrived]);
      }
    } catch (err) {
      throw route.delayed ? noDelayLadder(err) : err;
    } finally {
      reply?.stop();
    }
    if (this.conf.task_send_sent_event) {
      this.#sentEvents ??= new EventDispatcher(this.connection);
      this.#sentEvents.publish(
        'task-sent',
        taskSentFields(sentHeaders(message), queueName, route.exchange, route.routingKey),
      );
    }
  }

  /**
   * The delay in seconds when the task should go through native delayed delivery (Celery
   * 5.5: a countdown or eta, and a quorum queue in the app), else undefined. A direct queue
   * exchange cannot take part: Celery warns and sends the task with its eta only.
   */
  #nativeDelay(queue: Queue, options: SendTaskOptions): number | undefined {
    const delay =
      options.countdown ??
      (options.eta === undefined ? undefined : (options.eta.getTime() - Date.now()) / 1000);
    if (delay === undefined || delay === 0 || this.quorumQueue() === undefined) return undefined;
    if ((queue.exchange?.type ?? 'direct') === 'direct') {
      if (!this.#directWarned.has(queue.name)) {
        this.#directWarned.add(queue.name);
        this.#logger.warn(
          `Direct exchanges are not supported with native delayed delivery: ${queue.exchange?.name ?? queue.name} ` +
            'is a direct exchange but should be a topic or fanout exchange (task_default_exchange_type / ' +
            'task_create_missing_queue_exchange_type). Tasks with an eta or countdown sent to it are held ' +
            'by the worker until their eta, which can block a worker on a quorum queue.',
        );
      }
      return undefined;
    }
    return delay;
  }

  /**
   * Declares the native delayed delivery ladder (`celery_delayed_0..27` exchanges and queues,
   * `celery_delayed_delivery`) as kombu 5.5 does, with `broker_native_delayed_delivery_queue_type`.
   * A Celery 5.5+ worker or the Node Worker declares it when its app has a quorum queue;
   * a client only needs this when no such worker has started on the broker yet.
   *
   * @throws the broker's error (e.g. 406 when the ladder exists with another queue type).
   * @example
   * ```ts
   * await app.declareNativeDelayedDelivery();
   * ```
   */
  async declareNativeDelayedDelivery(): Promise<void> {
    const channel = await this.connection.channel();
    try {
      await declareNativeDelayedDelivery(channel, {
        queueType: this.conf.broker_native_delayed_delivery_queue_type,
      });
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /**
   * Remote control of the workers (Celery's `app.control`), made on first use.
   *
   * @example
   * ```ts
   * await app.control.inspect().active();
   * ```
   */
  get control(): Control {
    this.#control ??= new Control(this);
    return this.#control;
  }

  /**
   * An AsyncResult for a task id, on this app's backend.
   *
   * @example
   * ```ts
   * const value = await app.AsyncResult<number>(id).get({ timeout: 5000 });
   * ```
   */
  AsyncResult<T = unknown>(id: string): AsyncResult<T> {
    return new AsyncResult<T>(id, this.backend);
  }

  /**
   * Closes the backend (if the app built it) and the connection (if the app opened it).
   * Idempotent.
   *
   * @example
   * ```ts
   * await app.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#control?.close();
    await this.#sentEvents?.close();
    const producer = await this.#producer?.catch(() => undefined);
    if (producer !== undefined) {
      producer.close();
      await producer.channel.close().catch(() => undefined);
    }
    if (this.#ownsBackend) await this.backend.close?.();
    if (this.#ownsConnection) await this.connection.close();
  }
}

/**
 * A delayed publish refused because `celery_delayed_27` does not exist: the ladder is
 * declared by workers, so say so.
 */
function noDelayLadder(err: unknown): unknown {
  if (!(err instanceof CeleryAmqpError) || err.code !== 'NOT_FOUND') return err;
  return new ChannelError(
    `${err.message}: native delayed delivery needs its exchanges (celery_delayed_*), which a worker ` +
      'whose app has a quorum queue declares (Celery >= 5.5, or the Node Worker); or call ' +
      'app.declareNativeDelayedDelivery()',
    { code: 'NOT_FOUND', cause: err },
  );
}
