/**
 * The one Transport interface. The kombu layer talks only to these types; the concrete
 * transports (`amqp/` over amqplib, `memory/` the embedded broker) implement them and are
 * chosen by URL in `registry.ts`, the only module that imports them.
 *
 * Semantics follow AMQP 0-9-1 as RabbitMQ implements it, including its errors: a failed
 * declare rejects with a {@link ChannelError} (code e.g. `PRECONDITION_FAILED`) and closes
 * the channel; a lost connection rejects pending operations with a {@link ConnectionError}.
 *
 * @module
 */
import type { EventEmitter } from 'node:events';

/** A value in an AMQP field table (headers, arguments). `unknown` until decoded. */
export type FieldValue = unknown;

/** An AMQP field table. */
export type FieldTable = Record<string, FieldValue>;

/** The exchange types every transport routes. */
export type ExchangeType = 'direct' | 'topic' | 'fanout' | 'headers';

/** basic.properties, camelCased. Only set fields are sent. */
export interface MessageProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: FieldTable;
  /** 1 = transient, 2 = persistent. */
  deliveryMode?: 1 | 2;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in milliseconds, as a decimal string on the wire. */
  expiration?: string;
  messageId?: string;
  /** Seconds since the epoch. */
  timestamp?: number;
  type?: string;
  userId?: string;
  appId?: string;
}

/** Delivery metadata of a received message. */
export interface DeliveryInfo {
  deliveryTag: number;
  redelivered: boolean;
  exchange: string;
  routingKey: string;
  /** Set for basic.deliver (consume). */
  consumerTag?: string;
  /** Set for basic.get: messages left in the queue after this one. */
  messageCount?: number;
}

/** A message as the transport receives it: raw bytes, nothing decoded. */
export interface Delivery {
  body: Buffer;
  properties: MessageProperties;
  fields: DeliveryInfo;
}

/** A message the broker returned as unroutable (mandatory publish). */
export interface ReturnedMessage {
  body: Buffer;
  properties: MessageProperties;
  replyCode: number;
  replyText: string;
  exchange: string;
  routingKey: string;
}

export interface ExchangeDeclareOptions {
  /** @default true */
  durable?: boolean;
  /** @default false */
  autoDelete?: boolean;
  /** @default false */
  internal?: boolean;
  arguments?: FieldTable;
  /** Only check that it exists (404 NOT_FOUND otherwise). @default false */
  passive?: boolean;
  /** Do not wait for declare-ok; errors close the channel asynchronously. @default false */
  nowait?: boolean;
}

export interface QueueDeclareOptions {
  /** @default false */
  durable?: boolean;
  /** @default false */
  exclusive?: boolean;
  /** @default false */
  autoDelete?: boolean;
  /** `x-expires`, `x-message-ttl`, ... Integers are sent as signed 32-bit when they fit, as Python does. */
  arguments?: FieldTable;
  /** @default false */
  passive?: boolean;
  /** @default false */
  nowait?: boolean;
}

export interface QueueDeclareOk {
  queue: string;
  messageCount: number;
  consumerCount: number;
}

export interface PublishOptions {
  /** Return the message (event `return`) when no queue takes it. @default false */
  mandatory?: boolean;
}

export interface ConsumeOptions {
  /** @default false */
  noAck?: boolean;
  /** @default false */
  exclusive?: boolean;
  /** Chosen by the transport when absent. */
  consumerTag?: string;
  arguments?: FieldTable;
}

export interface ChannelOptions {
  /** Put the channel in publisher-confirm mode: publish() resolves on the broker's ack. @default false */
  confirm?: boolean;
}

/** Events a channel emits. */
export interface TransportChannelEvents {
  /** The channel closed; `error` is set when the broker (or a lost connection) closed it. */
  close: [error?: Error];
  /** An unroutable mandatory message came back. */
  return: [message: ReturnedMessage];
  /** The broker cancelled a consumer (e.g. its queue was deleted). */
  cancel: [consumerTag: string];
}

/**
 * One AMQP channel. Operations on one channel are carried out in call order; a
 * `nowait` declare or bind called before a publish reaches the broker before it.
 */
export interface TransportChannel extends EventEmitter<TransportChannelEvents> {
  /** Channel number (diagnostics). */
  readonly id: number;
  /** True once the channel has closed (by us or by the broker). */
  readonly closed: boolean;
  /** True when opened with `confirm: true`. */
  readonly confirm: boolean;

  declareExchange(name: string, type: ExchangeType | string, options?: ExchangeDeclareOptions): Promise<void>;
  deleteExchange(name: string, options?: { ifUnused?: boolean; nowait?: boolean }): Promise<void>;
  bindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args?: FieldTable,
    options?: { nowait?: boolean },
  ): Promise<void>;
  unbindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args?: FieldTable,
    options?: { nowait?: boolean },
  ): Promise<void>;

  /** Resolves with the declare-ok, or with `null` when `nowait`. An empty name asks the broker for one. */
  declareQueue(name: string, options?: QueueDeclareOptions): Promise<QueueDeclareOk | null>;
  bindQueue(
    queue: string,
    exchange: string,
    routingKey: string,
    args?: FieldTable,
    options?: { nowait?: boolean },
  ): Promise<void>;
  unbindQueue(queue: string, exchange: string, routingKey: string, args?: FieldTable): Promise<void>;
  /** Resolves with the number of messages purged. */
  purgeQueue(queue: string): Promise<number>;
  /** Resolves with the number of messages deleted with the queue. */
  deleteQueue(queue: string, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number>;

  /**
   * Publishes one message. Without confirms it resolves once the frame is written (or
   * buffered); in confirm mode it resolves on the broker's ack and rejects with
   * code `PUBLISH_NACKED` on a nack, or a ConnectionError/ChannelError when closed first.
   */
  publish(
    exchange: string,
    routingKey: string,
    body: Buffer,
    properties: MessageProperties,
    options?: PublishOptions,
  ): Promise<void>;

  /** basic.get: the next message, or `null` when the queue is empty. */
  get(queue: string, options?: { noAck?: boolean }): Promise<Delivery | null>;
  /** basic.consume: resolves with the consumer tag once consume-ok arrives. */
  consume(queue: string, onDelivery: (delivery: Delivery) => void, options?: ConsumeOptions): Promise<string>;
  cancel(consumerTag: string): Promise<void>;

  ack(deliveryTag: number, multiple?: boolean): void;
  /** basic.reject / basic.nack. */
  reject(deliveryTag: number, requeue: boolean): void;
  qos(prefetchSize: number, prefetchCount: number, global?: boolean): Promise<void>;
  /** basic.recover: redeliver unacked messages. */
  recover(requeue: boolean): Promise<void>;
  /** channel.flow. Transports that cannot honour it emulate it by pausing delivery. */
  flow(active: boolean): Promise<void>;

  close(): Promise<void>;
}

/** Events a connection emits. */
export interface TransportConnectionEvents {
  /** The connection closed; `error` is set when it was lost rather than closed by us. */
  close: [error?: Error];
  /** The broker blocked publishing (resource alarm). */
  blocked: [reason: string];
  unblocked: [];
}

/** An open connection to a broker. */
export interface TransportConnection extends EventEmitter<TransportConnectionEvents> {
  readonly closed: boolean;
  /** The URL actually connected to, password redacted (for logs and errors). */
  readonly displayUrl: string;
  createChannel(options?: ChannelOptions): Promise<TransportChannel>;
  close(): Promise<void>;
}

/** TLS options for amqps:// (passed to node:tls). */
export interface TlsOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  servername?: string;
  /** @default true */
  rejectUnauthorized?: boolean;
}

/** One broker address, parsed from a URL. */
export interface BrokerAddress {
  protocol: 'amqp' | 'amqps' | 'memory';
  hostname: string;
  port: number;
  username: string;
  password: string;
  /** Decoded vhost; `amqp://h//` and `amqp://h/` both mean `/`. */
  vhost: string;
  /** Query parameters (heartbeat, frame_max, ...), raw. */
  query: Record<string, string>;
}

/** Options for opening a connection. */
export interface ConnectOptions {
  /** Heartbeat interval in milliseconds; 0 disables. @default 60000 */
  heartbeat?: number;
  /** TCP connect timeout in milliseconds. @default 10000 */
  connectTimeout?: number;
  tls?: TlsOptions;
  /** Client properties sent in connection.start-ok. */
  clientProperties?: Record<string, unknown>;
  signal?: AbortSignal;
}

/** A transport: knows how to open connections for one address scheme. */
export interface Transport {
  readonly name: 'amqp' | 'memory';
  /** Opens a connection to one address. Rejects with a typed error (CONNECTION_REFUSED, ACCESS_REFUSED, ...). */
  connect(address: BrokerAddress, options?: ConnectOptions): Promise<TransportConnection>;
}
