/**
 * Dead-lettering for the embedded broker, as RabbitMQ 3.10 does it for classic queues: a
 * message rejected without requeue, or expired through `x-message-ttl` or `expiration`, on
 * a queue declared with `x-dead-letter-exchange` is republished to that exchange with an
 * `x-death` header.
 *
 * @module
 */
import type { FieldTable, MessageProperties } from '../types.js';
import type { MemoryQueue, StoredMessage } from './memory-queue.js';
import type { VirtualHost } from './virtual-host.js';

/** Why a message was dead-lettered (the `reason` field of its `x-death` entry). */
export type DeadLetterReason = 'rejected' | 'expired';

/**
 * A string field value as text: values arrive as strings from our callers and as Buffers
 * (longstr) from decoders. Anything else is undefined.
 *
 * @example
 * ```ts
 * fieldText(Buffer.from('dlx')); // 'dlx'
 * ```
 */
export function fieldText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString();
  return undefined;
}

function isTable(value: unknown): value is FieldTable {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/**
 * The `x-dead-letter-exchange` of a queue's arguments, or undefined when it has none.
 * `''` is a valid answer: the default exchange.
 *
 * @example
 * ```ts
 * deadLetterExchangeOf({ 'x-dead-letter-exchange': 'dlx' }); // 'dlx'
 * ```
 */
export function deadLetterExchangeOf(args: FieldTable): string | undefined {
  return fieldText(args['x-dead-letter-exchange']);
}

/**
 * The properties of a message after one dead-lettering from `queue` for `reason`: headers
 * copied, `x-death` updated and `x-first-death-*` set on the first one.
 *
 * RabbitMQ keeps one `x-death` entry per (queue, reason): a repeat increments its `count`
 * and moves it to the front, so the array does not grow with every retry. A per-message
 * `expiration` is removed (and kept as `original-expiration`) so that the message does not
 * expire again in the queues it is dead-lettered to.
 *
 * @example
 * ```ts
 * const props = deadLetterProperties(message, 'tasks', 'rejected', Date.now());
 * props.headers?.['x-death']; // [{ count: 1, reason: 'rejected', queue: 'tasks', ... }]
 * ```
 */
export function deadLetterProperties(
  message: StoredMessage,
  queue: string,
  reason: DeadLetterReason,
  now: number,
): MessageProperties {
  const properties: MessageProperties = { ...message.properties };
  const headers: FieldTable = { ...message.properties.headers };
  const previous = Array.isArray(headers['x-death']) ? (headers['x-death'] as unknown[]) : [];
  const same = (e: unknown): boolean =>
    isTable(e) && fieldText(e['queue']) === queue && fieldText(e['reason']) === reason;
  const existing = previous.find(same);
  let entry: FieldTable;
  if (existing !== undefined && isTable(existing)) {
    const count = Number(existing['count'] ?? 0);
    entry = { ...existing, count: (Number.isFinite(count) ? count : 0) + 1 };
  } else {
    entry = {
      count: 1,
      reason,
      queue,
      // A 'T' timestamp in whole seconds, in the typed form the AMQP transport decodes
      // RabbitMQ's to (and encodes back as a timestamp if the message is republished).
      time: { '!': 'timestamp', value: Math.floor(now / 1000) },
      exchange: message.exchange,
      'routing-keys': [message.routingKey],
    };
    if (reason === 'expired' && properties.expiration !== undefined) {
      entry['original-expiration'] = properties.expiration;
    }
  }
  if (reason === 'expired') delete properties.expiration;
  headers['x-death'] = [entry, ...previous.filter((e) => !same(e))];
  if (headers['x-first-death-queue'] === undefined) {
    headers['x-first-death-reason'] = reason;
    headers['x-first-death-queue'] = queue;
    headers['x-first-death-exchange'] = message.exchange;
  }
  properties.headers = headers;
  return properties;
}

/**
 * True when delivering a dead-lettered message to `target` would close a cycle that no
 * client takes part in: the target already appears in `x-death` and no entry up to it is
 * a rejection. RabbitMQ drops the message for such a queue rather than loop for ever
 * (e.g. a TTL queue whose dead-letter exchange routes back to itself).
 */
function isCycle(target: string, xDeath: unknown): boolean {
  if (!Array.isArray(xDeath)) return false;
  for (const e of xDeath) {
    if (!isTable(e)) continue;
    if (fieldText(e['reason']) === 'rejected') return false;
    if (fieldText(e['queue']) === target) return true;
  }
  return false;
}

/**
 * Dead-letters `message` from `queue` if the queue has a dead-letter exchange: republishes
 * it there under `x-dead-letter-routing-key` (or its own routing key) with an updated
 * `x-death`. A dead-letter exchange that does not exist drops the message silently, as on
 * RabbitMQ. Returns true when the message was routed to at least one queue.
 *
 * @example
 * ```ts
 * deadLetter(vhost, queue, message, 'rejected', Date.now());
 * ```
 */
export function deadLetter(
  vhost: VirtualHost,
  queue: MemoryQueue,
  message: StoredMessage,
  reason: DeadLetterReason,
  now: number,
): boolean {
  const exchange = queue.deadLetterExchange;
  if (exchange === undefined) return false;
  if (exchange !== '' && !vhost.exchanges.has(exchange)) return false;
  const routingKey = queue.deadLetterRoutingKey ?? message.routingKey;
  const properties = deadLetterProperties(message, queue.name, reason, now);
  const targets = vhost.route(exchange, routingKey, properties.headers, true);
  let routed = false;
  for (const target of targets) {
    if (isCycle(target.name, properties.headers?.['x-death'])) continue;
    target.enqueue(message.body, properties, exchange, routingKey, now);
    routed = true;
  }
  return routed;
}
