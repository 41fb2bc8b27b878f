/**
 * The app's task queue table (Celery's `app.amqp.queues`, a `Queues` mapping): the default
 * queue, and the queues created on demand the first time a name is used, with Celery 5.5/5.6's
 * queue types and Celery's quorum-queue detection.
 *
 * What Celery declares (celery/app/amqp.py at v5.6.3):
 * - The default queue: `Queue(task_default_queue, Exchange(task_default_exchange,
 *   task_default_exchange_type), task_default_routing_key)`, with
 *   `queue_arguments={'x-queue-type': 'quorum'}` when `task_default_queue_type` is quorum.
 * - A queue created on demand (`Queues.new_missing`): `Queue(name, Exchange(name, type),
 *   name)` where the type is `task_create_missing_queue_exchange_type`, else `direct` (kombu's
 *   default; not task_default_exchange_type), with `x-queue-type: quorum` when
 *   `task_create_missing_queue_type` is quorum. A classic type adds no argument at all.
 * - Queues and exchanges are durable; quorum queues cannot be auto-delete, exclusive or
 *   non-durable, nor take `x-max-priority` (RabbitMQ answers 406).
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import { Exchange } from '../kombu/exchange.js';
import {
  MAX_DELAY_SECONDS,
  calculateRoutingKey,
  delayedEntryExchange,
} from '../kombu/native-delayed-delivery.js';
import { Queue } from '../kombu/queue.js';

/** A RabbitMQ queue type Celery can declare. */
export type QueueType = 'classic' | 'quorum';

/**
 * The settings the queue table is built from, with Celery's names.
 *
 * @example
 * ```ts
 * const s: Partial<TaskQueueSettings> = { task_default_queue_type: 'quorum' };
 * ```
 */
export interface TaskQueueSettings {
  /** Queue used when sendTask names none. @default 'celery' */
  task_default_queue: string;
  /** Exchange of the default queue. @default the queue name */
  task_default_exchange: string;
  /** Type of the default queue's exchange. @default 'direct' */
  task_default_exchange_type: string;
  /** Routing key of the default queue. @default the queue name */
  task_default_routing_key: string;
  /** Type of the default queue: `classic` or `quorum` (Celery 5.5). @default 'classic' */
  task_default_queue_type: QueueType;
  /** Type of queues created on demand (Celery 5.6). @default 'classic' */
  task_create_missing_queue_type: QueueType;
  /** Exchange type of queues created on demand, or null for `direct` (Celery 5.6). @default null */
  task_create_missing_queue_exchange_type: string | null;
}

/**
 * A queue type setting checked as Celery checks it.
 *
 * @throws ArgumentError naming the setting for anything but 'classic' or 'quorum'.
 * @example
 * ```ts
 * checkQueueType('quorum', 'task_default_queue_type'); // 'quorum'
 * ```
 */
export function checkQueueType(value: unknown, setting: string): QueueType {
  if (value === 'classic' || value === 'quorum') return value;
  throw new ArgumentError(
    `${setting}: invalid queue type ${JSON.stringify(value)}. Valid types are 'classic' and 'quorum'.`,
  );
}

/**
 * The queue table: one declaration per name, made on first use.
 *
 * @example
 * ```ts
 * const table = new TaskQueues({ ...settings, task_create_missing_queue_type: 'quorum' });
 * table.get('math').queueArguments; // { 'x-queue-type': 'quorum' }
 * table.quorumQueue(); // 'math'
 * ```
 */
export class TaskQueues {
  readonly #settings: Readonly<TaskQueueSettings>;
  readonly #queues = new Map<string, Queue>();

  constructor(settings: Readonly<TaskQueueSettings>) {
    this.#settings = settings;
    // Celery's table always holds the default queue (when task_queues is unset).
    this.get(settings.task_default_queue);
  }

  /**
   * The declaration of queue `name`, created on demand (Celery's `Queues.__missing__`).
   *
   * @example
   * ```ts
   * await table.get('celery').bind(connection).declare();
   * ```
   */
  get(name: string): Queue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      q = this.#make(name);
      this.#queues.set(name, q);
    }
    return q;
  }

  /** Every queue of the table, the default one first. */
  values(): IterableIterator<Queue> {
    return this.#queues.values();
  }

  /**
   * The first quorum queue of the table, or undefined (Celery's `detect_quorum_queues`, which
   * looks at the queue arguments of every queue the app knows, consumed or not).
   *
   * @example
   * ```ts
   * if (table.quorumQueue() !== undefined) { ... } // per-consumer prefetch, native delayed delivery
   * ```
   */
  quorumQueue(): string | undefined {
    for (const q of this.#queues.values()) {
      if (q.queueArguments?.['x-queue-type'] === 'quorum') return q.name;
    }
    return undefined;
  }

  #make(name: string): Queue {
    const s = this.#settings;
    const isDefault = name === s.task_default_queue;
    const type = isDefault ? s.task_default_queue_type : s.task_create_missing_queue_type;
    const exchange = isDefault
      ? new Exchange(s.task_default_exchange, { type: s.task_default_exchange_type, durable: true })
      : new Exchange(name, { type: s.task_create_missing_queue_exchange_type ?? 'direct', durable: true });
    return new Queue(name, {
      exchange,
      routingKey: isDefault ? s.task_default_routing_key : name,
      durable: true,
      ...(type === 'quorum' ? { queueArguments: { 'x-queue-type': 'quorum' } } : {}),
    });
  }
}

/**
 * Where a task message goes: exchange, routing key, the queues declared before the publish,
 * and whether it takes the native delayed delivery ladder.
 */
export interface TaskRoute {
  /** Exchange published to (`''` for the default exchange). */
  exchange: string;
  /** Routing key of the publish. */
  routingKey: string;
  /** Declared before the publish (none for a delayed message, as Celery). */
  declare: Queue[];
  /** True when the message goes to `celery_delayed_27` with a delay routing key. */
  delayed: boolean;
}

/**
 * The route Celery 5.5+ gives a task (`send_task` and `send_task_message`):
 * - no exchange given and a direct queue exchange: the default exchange `''` with the queue
 *   name as routing key (Celery's anon-exchange shortcut);
 * - no exchange given and a topic/fanout/headers queue exchange: that exchange, with the
 *   queue's routing key;
 * - an exchange given: it, with the given routing key or the queue's;
 * - with `delaySeconds` (a countdown or eta, when the app has a quorum queue) and a queue
 *   exchange that is not direct: `celery_delayed_27`, routing key = the delay in whole
 *   seconds as 28 binary digits, then the queue's routing key, and nothing declared. A delay
 *   under one whole second goes the normal way (kombu refuses a zero countdown; the worker
 *   then holds the task for its eta).
 *
 * @example
 * ```ts
 * taskRoute(app.taskQueue('tasks'), {}, 3).routingKey; // '0.0. ... .1.1.tasks' for a topic queue
 * ```
 */
export function taskRoute(
  queue: Queue,
  options: { exchange?: string | undefined; routingKey?: string | undefined },
  delaySeconds?: number,
): TaskRoute {
  const exchangeType = queue.exchange?.type ?? 'direct';
  const whole = delaySeconds === undefined ? 0 : Math.trunc(delaySeconds);
  if (exchangeType !== 'direct' && whole >= 1) {
    return {
      exchange: delayedEntryExchange(),
      routingKey: calculateRoutingKey(Math.min(whole, MAX_DELAY_SECONDS), queue.routingKey),
      declare: [],
      delayed: true,
    };
  }
  const given = options.exchange !== undefined && options.exchange !== '';
  if (!given && exchangeType === 'direct') {
    return { exchange: '', routingKey: queue.name, declare: [queue], delayed: false };
  }
  return {
    exchange: given ? (options.exchange ?? '') : (queue.exchange?.name ?? ''),
    routingKey: options.routingKey ?? queue.routingKey,
    declare: [queue],
    delayed: false,
  };
}
