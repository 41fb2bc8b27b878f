/**
 * The Celery app (Python's `celery.Celery`, client side): settings, a broker connection, a
 * result backend, and {@link Celery.sendTask} in message protocol v2 (or v1, `task_protocol: 1`).
 *
 * Routing as Celery 5.2 does it by default: the task queue is declared as kombu's
 * `Queue(name, Exchange(name, 'direct'), routing_key=name)` (durable queue, durable direct
 * exchange of the same name, bound by the name), and the message is published to the default
 * exchange `''` with the queue name as routing key (Celery's "anon-exchange" shortcut for
 * direct queues). A Python worker declaring the same queue gets no 406.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { ArgumentError, ConnectionError } from '../errors.js';
import { Connection } from '../kombu/connection.js';
import { Exchange } from '../kombu/exchange.js';
import { Producer } from '../kombu/producer.js';
import { Queue } from '../kombu/queue.js';
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

/**
 * Task-sending settings, with Celery's names.
 *
 * @example
 * ```ts
 * new Celery({ settings: { task_default_queue: 'math', task_serializer: 'msgpack' } });
 * ```
 */
export interface AppSettings {
  /** Queue used when sendTask names none. @default 'celery' */
  task_default_queue: string;
  /** Exchange of the default queue. @default the queue name */
  task_default_exchange: string;
  /** Type of task exchanges. @default 'direct' */
  task_default_exchange_type: string;
  /** Routing key of the default queue. @default the queue name */
  task_default_routing_key: string;
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
  /** Delay in seconds before the worker runs the task (becomes the `eta`). @default undefined */
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
  readonly #queues = new Map<string, Queue>();
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
    });
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
   * The task queue as Celery declares it: durable, bound to the durable direct exchange of the
   * same name (the default queue uses task_default_exchange / task_default_routing_key).
   *
   * @example
   * ```ts
   * await app.taskQueue('celery').bind(app.connection).declare();
   * ```
   */
  taskQueue(name: string): Queue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      const isDefault = name === this.conf.task_default_queue;
      const exchange = new Exchange(isDefault ? this.conf.task_default_exchange : name, {
        type: this.conf.task_default_exchange_type,
        durable: true,
      });
      q = new Queue(name, {
        exchange,
        routingKey: isDefault ? this.conf.task_default_routing_key : name,
        durable: true,
      });
      this.#queues.set(name, q);
    }
    return q;
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
   * has the task message (publisher confirms); a refused or failed publish rejects. The reply
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
    const direct = options.exchange === undefined || options.exchange === '';
    const producer = await this.#getProducer();
    const priority = options.priority ?? this.conf.task_default_priority;
    await producer.publish(message.body, {
      exchange: direct ? '' : (options.exchange ?? ''),
      // Celery: no exchange (or no routing key) on a direct queue means '' and the queue name.
      routingKey: direct ? queueName : (options.routingKey ?? queue.routingKey),
      serializer: options.serializer ?? this.conf.task_serializer,
      ...(this.conf.task_compression === null ? {} : { compression: this.conf.task_compression }),
      deliveryMode: this.conf.task_default_delivery_mode,
      ...(priority === null ? {} : { priority }),
      headers: message.headers,
      correlationId: message.properties.correlationId,
      replyTo: message.properties.replyTo,
      ...(expiration === undefined ? {} : { expiration }),
      declare: [queue],
      ...signal,
    });
    if (this.conf.task_send_sent_event) {
      this.#sentEvents ??= new EventDispatcher(this.connection);
      const exchange = direct ? '' : (options.exchange ?? '');
      const routingKey = direct ? queueName : (options.routingKey ?? queue.routingKey);
      this.#sentEvents.publish(
        'task-sent',
        taskSentFields(sentHeaders(message), queueName, exchange, routingKey),
      );
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
