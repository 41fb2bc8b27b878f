/**
 * Conversions between this library's transport types and amqplib's: field tables typed the
 * way Python's py-amqp types them, message properties, deliveries and returned messages.
 *
 * @module
 */
import type { Message } from 'amqplib';
import type { Delivery, DeliveryInfo, FieldTable, MessageProperties, ReturnedMessage } from '../types.js';

/** amqplib's explicit field-value form: `{ '!': type, value }` picks the wire tag. */
interface TypedValue {
  '!': string;
  value: unknown;
}

const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;

function isTypedValue(value: object): value is TypedValue {
  return Object.hasOwn(value, '!');
}

/**
 * Types one field value for the wire the way py-amqp does. amqplib picks the narrowest tag
 * for a JS number (`b` for 10, `s` for 1000, `I` only from 32768 up), but Python sends every
 * int that fits in 32 bits as `I` (signed 32-bit) and larger ones as `l`. RabbitMQ compares
 * queue arguments by type as well as value, so `x-expires` or `x-max-priority` typed
 * differently from Python's declaration risks a 406 PRECONDITION_FAILED.
 */
function typeValue(value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX
        ? { '!': 'int', value }
        : value;
    case 'bigint':
      // amqplib cannot encode a bigint; py-amqp sends big ints as signed 64-bit.
      return { '!': 'long', value };
    case 'object':
      if (value === null || Buffer.isBuffer(value)) return value;
      if (Array.isArray(value)) return value.map(typeValue);
      // py-amqp sends datetime as a 'T' timestamp in seconds.
      if (value instanceof Date) return { '!': 'timestamp', value: Math.floor(value.getTime() / 1000) };
      if (isTypedValue(value)) return value;
      return typeEntries(value);
    default:
      return value;
  }
}

/**
 * A copy of a field table with integers tagged as signed 32-bit (`I`) when they fit, as
 * Python sends them; nested tables and arrays are typed too, explicit `{ '!': type, value }`
 * entries and undefined values are left alone.
 *
 * @param table - Arguments or headers as the caller wrote them.
 * @returns A table amqplib encodes exactly as py-amqp would.
 * @example
 * ```ts
 * typeTable({ 'x-expires': 86400000, 'x-max-priority': 10 });
 * // { 'x-expires': { '!': 'int', value: 86400000 }, 'x-max-priority': { '!': 'int', value: 10 } }
 * ```
 */
export function typeTable(table: FieldTable | undefined): FieldTable {
  return table === undefined ? {} : typeEntries(table);
}

/** The typed copy of any object's own entries (a nested table). */
function typeEntries(table: object): FieldTable {
  const out: FieldTable = {};
  for (const [key, value] of Object.entries(table)) {
    if (value !== undefined) out[key] = typeValue(value);
  }
  return out;
}

/** The amqplib publish options for our properties plus the mandatory flag. */
export type AmqplibPublishOptions = MessageProperties & { mandatory: boolean; headers: FieldTable };

/**
 * amqplib publish options for a message. Headers are always sent (an empty table when
 * unset), as kombu does; unset properties stay out of the property flags (amqplib skips
 * undefined ones).
 *
 * @param properties - The message's properties.
 * @param mandatory - basic.publish's mandatory flag.
 * @example
 * ```ts
 * toPublishOptions({ contentType: 'application/json', deliveryMode: 2 }, false);
 * ```
 */
export function toPublishOptions(properties: MessageProperties, mandatory: boolean): AmqplibPublishOptions {
  // Object.assign, not `{ ...properties, mandatory }`: V8 builds a spread followed by more
  // properties on a slow path (a few µs each), and this runs for every publish.
  return Object.assign({}, properties, { mandatory, headers: typeTable(properties.headers) });
}

/**
 * Our {@link MessageProperties} from amqplib's, which lists every property with `undefined`
 * for the unset ones: those are omitted, and amqplib's `clusterId` (deprecated) is dropped.
 * Written out field by field: this runs for every delivery.
 *
 * @example
 * ```ts
 * fromAmqplibProperties(message.properties).contentType; // 'application/json'
 * ```
 */
export function fromAmqplibProperties(properties: Message['properties']): MessageProperties {
  const p = properties;
  const out: MessageProperties = {};
  if (p.contentType != null) out.contentType = p.contentType;
  if (p.contentEncoding != null) out.contentEncoding = p.contentEncoding;
  if (p.headers != null) out.headers = p.headers;
  if (p.deliveryMode != null) out.deliveryMode = p.deliveryMode;
  if (p.priority != null) out.priority = p.priority;
  if (p.correlationId != null) out.correlationId = p.correlationId;
  if (p.replyTo != null) out.replyTo = p.replyTo;
  if (p.expiration != null) out.expiration = p.expiration;
  if (p.messageId != null) out.messageId = p.messageId;
  if (p.timestamp != null) out.timestamp = p.timestamp;
  if (p.type != null) out.type = p.type;
  if (p.userId != null) out.userId = p.userId;
  if (p.appId != null) out.appId = p.appId;
  return out;
}

/**
 * A {@link Delivery} from an amqplib message (basic.deliver or basic.get-ok).
 *
 * @example
 * ```ts
 * const delivery = toDelivery(await amqplibChannel.get('q') as GetMessage);
 * ```
 */
export function toDelivery(message: Message): Delivery {
  const f = message.fields;
  const fields: DeliveryInfo = {
    deliveryTag: f.deliveryTag,
    redelivered: f.redelivered,
    exchange: f.exchange,
    routingKey: f.routingKey,
  };
  if (f.consumerTag !== undefined) fields.consumerTag = f.consumerTag;
  if (f.messageCount !== undefined) fields.messageCount = f.messageCount;
  return { body: message.content, properties: fromAmqplibProperties(message.properties), fields };
}

/**
 * A {@link ReturnedMessage} from an amqplib basic.return message.
 *
 * @example
 * ```ts
 * channel.on('return', (m) => emit('return', toReturned(m)));
 * ```
 */
export function toReturned(message: Message): ReturnedMessage {
  // basic.return's fields, which amqplib's types do not declare.
  const f = message.fields;
  const replyCode: unknown = Reflect.get(f, 'replyCode');
  const replyText: unknown = Reflect.get(f, 'replyText');
  return {
    body: message.content,
    properties: fromAmqplibProperties(message.properties),
    replyCode: typeof replyCode === 'number' ? replyCode : 0,
    replyText: typeof replyText === 'string' ? replyText : '',
    exchange: f.exchange,
    routingKey: f.routingKey,
  };
}
