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
      return typeTable(value as FieldTable);
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
  const out: FieldTable = {};
  if (table === undefined) return out;
  for (const [key, value] of Object.entries(table)) {
    if (value !== undefined) out[key] = typeValue(value);
  }
  return out;
}

/** The amqplib publish options for our properties plus the mandatory flag. */
export interface AmqplibPublishOptions {
  mandatory: boolean;
  contentType?: string;
  contentEncoding?: string;
  headers: FieldTable;
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  messageId?: string;
  timestamp?: number;
  type?: string;
  userId?: string;
  appId?: string;
}

/** Property names shared, unchanged, by both sides. `headers` is handled separately. */
const PROPERTY_KEYS = [
  'contentType',
  'contentEncoding',
  'deliveryMode',
  'priority',
  'correlationId',
  'replyTo',
  'expiration',
  'messageId',
  'timestamp',
  'type',
  'userId',
  'appId',
] as const satisfies ReadonlyArray<keyof MessageProperties>;

/**
 * amqplib publish options for a message. Headers are always sent (an empty table when
 * unset), as kombu does; unset properties are left out of the property flags.
 *
 * @param properties - The message's properties.
 * @param mandatory - basic.publish's mandatory flag.
 * @example
 * ```ts
 * toPublishOptions({ contentType: 'application/json', deliveryMode: 2 }, false);
 * ```
 */
export function toPublishOptions(properties: MessageProperties, mandatory: boolean): AmqplibPublishOptions {
  const out: AmqplibPublishOptions = { mandatory, headers: typeTable(properties.headers) };
  const src = properties as Record<string, unknown>;
  const dst = out as unknown as Record<string, unknown>;
  for (const key of PROPERTY_KEYS) {
    if (src[key] !== undefined) dst[key] = src[key];
  }
  return out;
}

/**
 * Our {@link MessageProperties} from amqplib's, which lists every property with `undefined`
 * for the unset ones: those are omitted, and amqplib's `clusterId` (deprecated) is dropped.
 *
 * @example
 * ```ts
 * fromAmqplibProperties(message.properties).contentType; // 'application/json'
 * ```
 */
export function fromAmqplibProperties(properties: Message['properties']): MessageProperties {
  const out: Record<string, unknown> = {};
  const src = properties as unknown as Record<string, unknown>;
  for (const key of PROPERTY_KEYS) {
    const value = src[key];
    if (value !== undefined && value !== null) out[key] = value;
  }
  if (properties.headers !== undefined && properties.headers !== null) out['headers'] = properties.headers;
  return out as MessageProperties;
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
  const f = message.fields as unknown as {
    replyCode: number;
    replyText: string;
    exchange: string;
    routingKey: string;
  };
  return {
    body: message.content,
    properties: fromAmqplibProperties(message.properties),
    replyCode: f.replyCode,
    replyText: f.replyText,
    exchange: f.exchange,
    routingKey: f.routingKey,
  };
}
