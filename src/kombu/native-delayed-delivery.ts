/**
 * Native delayed delivery on RabbitMQ (kombu 5.5's `kombu.transport.native_delayed_delivery`,
 * used by Celery 5.5+ for countdown/eta tasks when quorum queues are in use): a delay is
 * written as 28 binary digits in the routing key, and a ladder of TTL queues holds the message
 * for each set bit.
 *
 * The topology, as kombu 5.5/5.6 declares it (names shown without a prefix):
 * - 28 topic exchanges `celery_delayed_27` .. `celery_delayed_0`, each with a queue of the
 *   same name: `x-queue-type` (the queue type), `x-overflow: reject-publish`,
 *   `x-message-ttl: 2^level * 1000`, `x-dead-letter-exchange` = the next level down (the
 *   delivery exchange below level 0), plus `x-dead-letter-strategy: at-least-once` for
 *   quorum queues. Queues and exchanges are durable, not auto-delete.
 * - Level L's queue is bound to its exchange with `"*." x (27 - L) + "1.#"` (its bit set);
 *   level L's exchange is bound to level L-1's with `"*." x (27 - L) + "0.#"` (bit clear:
 *   go down at once); the topic exchange `celery_delayed_delivery` is bound to level 0 with
 *   `"*." x 27 + "0.#"`.
 * - A task queue joins through its own (topic or fanout) exchange: that exchange is bound to
 *   `celery_delayed_delivery` with `#.<routing key>`, and the queue to its exchange with the
 *   same key. Direct exchanges cannot take part (kombu warns and skips them).
 *
 * kombu's main branch (after 5.6.2) adds an optional name prefix: `<prefix>_celery_delayed_N`
 * and `<prefix>_celery_delayed_delivery`; {@link DelayedDeliveryOptions.prefix} is that.
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import type { FieldTable } from '../transport/types.js';
import type { Channel } from './channel.js';
import { Exchange } from './exchange.js';
import { Queue } from './queue.js';

/** Bits of the delay in a routing key (kombu's `MAX_NUMBER_OF_BITS_TO_USE`). */
export const DELAY_BITS = 28;

/** The highest level (kombu's `MAX_LEVEL`). */
export const MAX_DELAY_LEVEL = DELAY_BITS - 1;

/** The longest delay the ladder can hold, in seconds (2^28 - 1, about 8.5 years). */
export const MAX_DELAY_SECONDS = 2 ** DELAY_BITS - 1;

/** Queue type of the delay queues (Celery's `broker_native_delayed_delivery_queue_type`). */
export type DelayQueueType = 'classic' | 'quorum';

/**
 * Options of the topology functions.
 *
 * @example
 * ```ts
 * const o: DelayedDeliveryOptions = { queueType: 'quorum' };
 * ```
 */
export interface DelayedDeliveryOptions {
  /** Type of the 28 delay queues. @default 'quorum' (Celery's default) */
  queueType?: DelayQueueType | undefined;
  /** Name prefix, as kombu's main branch takes it (`<prefix>_celery_delayed_N`); none when empty. @default undefined */
  prefix?: string | undefined;
}

/**
 * The delay exchange and queue of a level: `celery_delayed_<level>` (kombu's `level_name`).
 *
 * @throws ArgumentError for a negative level.
 * @example
 * ```ts
 * levelName(27); // 'celery_delayed_27'
 * levelName(0, 'app'); // 'app_celery_delayed_0'
 * ```
 */
export function levelName(level: number, prefix?: string): string {
  if (!Number.isInteger(level) || level < 0) throw new ArgumentError('level must be a non-negative number');
  return prefix ? `${prefix}_celery_delayed_${level}` : `celery_delayed_${level}`;
}

/**
 * The exchange delayed messages come out of: `celery_delayed_delivery`.
 *
 * @example
 * ```ts
 * deliveryExchangeName(); // 'celery_delayed_delivery'
 * ```
 */
export function deliveryExchangeName(prefix?: string): string {
  return prefix ? `${prefix}_celery_delayed_delivery` : 'celery_delayed_delivery';
}

/**
 * The exchange a delayed message is published to: the top level, `celery_delayed_27`.
 *
 * @example
 * ```ts
 * delayedEntryExchange(); // 'celery_delayed_27'
 * ```
 */
export function delayedEntryExchange(prefix?: string): string {
  return levelName(MAX_DELAY_LEVEL, prefix);
}

/**
 * The routing key of a message delayed by `countdown` whole seconds: the delay as 28 binary
 * digits joined by dots, a dot, then the original routing key (kombu's `calculate_routing_key`).
 *
 * @param countdown - Whole seconds, 1 to 2^28 - 1.
 * @throws ArgumentError for a countdown below 1 or above 2^28 - 1, not an integer, or an
 *   empty routing key.
 * @example
 * ```ts
 * calculateRoutingKey(3, 'tasks'); // '0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.1.tasks'
 * ```
 */
export function calculateRoutingKey(countdown: number, routingKey: string): string {
  if (!Number.isInteger(countdown) || countdown < 1) {
    throw new ArgumentError(`countdown must be a positive number of whole seconds, got ${String(countdown)}`);
  }
  if (countdown > MAX_DELAY_SECONDS) {
    throw new ArgumentError(`countdown must be at most ${MAX_DELAY_SECONDS} seconds, got ${countdown}`);
  }
  if (routingKey === '') throw new ArgumentError('routing_key must be non-empty');
  return `${countdown.toString(2).padStart(DELAY_BITS, '0').split('').join('.')}.${routingKey}`;
}

/** The arguments of level `level`'s delay queue, in kombu's order. */
export function delayQueueArguments(level: number, queueType: DelayQueueType, prefix?: string): FieldTable {
  const args: FieldTable = {
    'x-queue-type': queueType,
    'x-overflow': 'reject-publish',
    'x-message-ttl': 2 ** level * 1000,
    'x-dead-letter-exchange': level > 0 ? levelName(level - 1, prefix) : deliveryExchangeName(prefix),
  };
  if (queueType === 'quorum') args['x-dead-letter-strategy'] = 'at-least-once';
  return args;
}

function queueTypeOf(options: DelayedDeliveryOptions): DelayQueueType {
  const type = options.queueType ?? 'quorum';
  if (type !== 'classic' && type !== 'quorum') {
    throw new ArgumentError(`queue_type must be either classic or quorum, got ${JSON.stringify(type)}`);
  }
  return type;
}

/**
 * Declares the delay ladder: the 28 level exchanges and queues, their bindings, the
 * exchange-to-exchange bindings and the delivery exchange, in kombu's order. Idempotent.
 *
 * @throws ArgumentError for a queue type other than classic or quorum; the broker's error
 *   when a declaration is refused (e.g. 406 against a ladder declared with another type).
 * @example
 * ```ts
 * await declareNativeDelayedDelivery(await connection.channel(), { queueType: 'quorum' });
 * ```
 */
export async function declareNativeDelayedDelivery(
  channel: Channel,
  options: DelayedDeliveryOptions = {},
): Promise<void> {
  const queueType = queueTypeOf(options);
  const prefix = options.prefix;
  let routingKey = '1.#';
  for (let level = MAX_DELAY_LEVEL; level >= 0; level--) {
    const name = levelName(level, prefix);
    await new Exchange(name, { type: 'topic' }).bind(channel).declare();
    const queue = new Queue(name, { queueArguments: delayQueueArguments(level, queueType, prefix) }).bind(
      channel,
    );
    await queue.queueDeclare();
    await queue.bindTo(name, { routingKey });
    routingKey = `*.${routingKey}`;
  }
  routingKey = '0.#';
  for (let level = MAX_DELAY_LEVEL; level > 0; level--) {
    await new Exchange(levelName(level - 1, prefix), { type: 'topic' })
      .bind(channel)
      .bindTo(levelName(level, prefix), { routingKey });
    routingKey = `*.${routingKey}`;
  }
  const delivery = new Exchange(deliveryExchangeName(prefix), { type: 'topic' }).bind(channel);
  await delivery.declare();
  await delivery.bindTo(levelName(0, prefix), { routingKey });
}

/**
 * The binding key a task queue's exchange and the queue itself get for delayed messages:
 * the routing key when it starts with `#`, else `#.<routing key>`.
 *
 * @example
 * ```ts
 * delayedBindingKey('tasks'); // '#.tasks'
 * ```
 */
export function delayedBindingKey(routingKey: string): string {
  return routingKey.startsWith('#') ? routingKey : `#.${routingKey}`;
}

/**
 * Binds a task queue to the delivery exchange (kombu's
 * `bind_queue_to_native_delayed_delivery_exchange`): for the queue's exchange, or else each
 * of its extra bindings, the exchange is bound to `celery_delayed_delivery` and the queue to
 * the exchange, both with {@link delayedBindingKey}. Direct exchanges are skipped.
 *
 * @returns The names of the direct exchanges skipped (the caller warns, as kombu does).
 * @example
 * ```ts
 * const skipped = await bindQueueToNativeDelayedDelivery(channel, app.taskQueue('tasks'));
 * ```
 */
export async function bindQueueToNativeDelayedDelivery(
  channel: Channel,
  queue: Queue,
  options: Pick<DelayedDeliveryOptions, 'prefix'> = {},
): Promise<string[]> {
  const entries =
    queue.exchange !== undefined && queue.exchange.name !== ''
      ? [{ exchange: queue.exchange, routingKey: queue.routingKey }]
      : queue.bindings.flatMap((b) =>
          b.exchange === undefined ? [] : [{ exchange: b.exchange, routingKey: b.routingKey }],
        );
  const skipped: string[] = [];
  const bound = queue.bind(channel);
  for (const { exchange, routingKey } of entries) {
    if (exchange.type === 'direct') {
      skipped.push(exchange.name);
      continue;
    }
    const key = delayedBindingKey(routingKey);
    await exchange.bind(channel).bindTo(deliveryExchangeName(options.prefix), { routingKey: key });
    await bound.bindTo(exchange.name, { routingKey: key });
  }
  return skipped;
}
