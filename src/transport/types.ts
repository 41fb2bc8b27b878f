/**
 * The one Transport interface. The kombu layer talks only to these types; the concrete
 * transports (`amqp/` over amqplib, `memory/` the embedded broker, or any registered with
 * `registerTransport`) implement them and are chosen by URL scheme in `registry.ts`, the only
 * module that imports them.
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

// ---- One parameter object per AMQP method ------------------------------------------------
// Field names are the AMQP 0-9-1 argument names, camelCased. Each transport, the kombu
// Channel, its recovery record and the embedded broker take exactly these shapes.

/** exchange.declare. */
export interface ExchangeDeclareParams {
  exchange: string;
  type: ExchangeType | string;
  /** @default true */
  durable?: boolean;
  /** @default false */
  autoDelete?: boolean;
  /** @default false */
  internal?: boolean;
  /** Only check that it exists (404 NOT_FOUND otherwise). @default false */
  passive?: boolean;
  /** Do not wait for declare-ok; errors close the channel asynchronously. @default false */
  nowait?: boolean;
  /** @default {} */
  arguments?: FieldTable;
}

/** exchange.delete. Deleting a missing exchange succeeds (RabbitMQ 3.2+). */
export interface ExchangeDeleteParams {
  exchange: string;
  /** Only when it has no bindings. @default false */
  ifUnused?: boolean;
  /** @default false */
  nowait?: boolean;
}

/** exchange.bind (a RabbitMQ extension): route what reaches `source` on to `destination`. */
export interface ExchangeBindParams {
  destination: string;
  source: string;
  /** @default '' */
  routingKey?: string;
  /** @default {} */
  arguments?: FieldTable;
  /** @default false */
  nowait?: boolean;
}

/** exchange.unbind: the fields of the binding to remove. */
export type ExchangeUnbindParams = ExchangeBindParams;

/** queue.declare. An empty name asks the broker for one (`amq.gen-...`). */
export interface QueueDeclareParams {
  queue: string;
  /** @default false */
  durable?: boolean;
  /** @default false */
  exclusive?: boolean;
  /** @default false */
  autoDelete?: boolean;
  /** Only check that it exists (404 NOT_FOUND otherwise). @default false */
  passive?: boolean;
  /** Do not wait for declare-ok. @default false */
  nowait?: boolean;
  /** `x-expires`, `x-message-ttl`, ... Integers are sent as signed 32-bit when they fit, as Python does. @default {} */
  arguments?: FieldTable;
}

/** queue.bind. */
export interface QueueBindParams {
  queue: string;
  exchange: string;
  /** @default '' */
  routingKey?: string;
  /** @default {} */
  arguments?: FieldTable;
  /** @default false */
  nowait?: boolean;
}

/** queue.unbind (AMQP 0-9-1 has no nowait form of it). */
export type QueueUnbindParams = Omit<QueueBindParams, 'nowait'>;

/** queue.purge. */
export interface QueuePurgeParams {
  queue: string;
}

/** queue.delete. Deleting a missing queue succeeds with 0 (RabbitMQ 3.2+). */
export interface QueueDeleteParams {
  queue: string;
  /** Only when it has no consumers. @default false */
  ifUnused?: boolean;
  /** Only when it holds no messages. @default false */
  ifEmpty?: boolean;
}

/** basic.publish with its content. */
export interface BasicPublishParams {
  exchange: string;
  routingKey: string;
  body: Buffer;
  /** Only set fields are sent. @default {} */
  properties?: MessageProperties;
  /** Return the message (event `return`) when no queue takes it. @default false */
  mandatory?: boolean;
}

/** basic.consume. */
export interface BasicConsumeParams {
  queue: string;
  /** Chosen by the transport when absent. */
  consumerTag?: string;
  /** @default false */
  noAck?: boolean;
  /** @default false */
  exclusive?: boolean;
  /** @default {} */
  arguments?: FieldTable;
}

/** basic.cancel. */
export interface BasicCancelParams {
  consumerTag: string;
}

/** basic.get. */
export interface BasicGetParams {
  queue: string;
  /** @default false */
  noAck?: boolean;
}

/** basic.qos. RabbitMQ refuses a `prefetchSize` other than 0. */
export interface BasicQosParams {
  /** @default 0 */
  prefetchSize?: number;
  /** 0 is unlimited. @default 0 */
  prefetchCount?: number;
  /** RabbitMQ: shared by every consumer of the channel rather than per consumer. @default false */
  global?: boolean;
}

/** basic.ack. */
export interface BasicAckParams {
  deliveryTag: number;
  /** Also every earlier unacked delivery of the channel. @default false */
  multiple?: boolean;
}

/** basic.reject: drop (or dead-letter) the message, or requeue it. */
export interface BasicRejectParams {
  deliveryTag: number;
  requeue: boolean;
}

/** basic.recover: redeliver every unacked message of the channel. */
export interface BasicRecoverParams {
  /** @default false */
  requeue?: boolean;
}

/** channel.flow. */
export interface ChannelFlowParams {
  active: boolean;
}

/** The result of queue.declare. */
export interface QueueDeclareOk {
  queue: string;
  messageCount: number;
  consumerCount: number;
}

/**
 * The parameters of each {@link TransportChannel} method that takes one parameter object, by
 * method name: what generic code (the recovery record's replay) dispatches on.
 */
export interface ChannelMethodParams {
  declareExchange: ExchangeDeclareParams;
  deleteExchange: ExchangeDeleteParams;
  bindExchange: ExchangeBindParams;
  unbindExchange: ExchangeUnbindParams;
  declareQueue: QueueDeclareParams;
  bindQueue: QueueBindParams;
  unbindQueue: QueueUnbindParams;
  purgeQueue: QueuePurgeParams;
  deleteQueue: QueueDeleteParams;
  publish: BasicPublishParams;
  get: BasicGetParams;
  cancel: BasicCancelParams;
  qos: BasicQosParams;
  recover: BasicRecoverParams;
  flow: ChannelFlowParams;
}

/** Options of {@link TransportConnection.createChannel}. */
export interface TransportChannelOptions {
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

  declareExchange(params: ExchangeDeclareParams): Promise<void>;
  deleteExchange(params: ExchangeDeleteParams): Promise<void>;
  bindExchange(params: ExchangeBindParams): Promise<void>;
  unbindExchange(params: ExchangeUnbindParams): Promise<void>;

  /** Resolves with the declare-ok, or with `null` when `nowait`. */
  declareQueue(params: QueueDeclareParams): Promise<QueueDeclareOk | null>;
  bindQueue(params: QueueBindParams): Promise<void>;
  unbindQueue(params: QueueUnbindParams): Promise<void>;
  /** Resolves with the number of messages purged. */
  purgeQueue(params: QueuePurgeParams): Promise<number>;
  /** Resolves with the number of messages deleted with the queue. */
  deleteQueue(params: QueueDeleteParams): Promise<number>;

  /**
   * Publishes one message. Without confirms it resolves once the frame is written (or
   * buffered); in confirm mode it resolves on the broker's ack and rejects with
   * code `PUBLISH_NACKED` on a nack, or a ConnectionError/ChannelError when closed first.
   */
  publish(params: BasicPublishParams): Promise<void>;

  /** basic.get: the next message, or `null` when the queue is empty. */
  get(params: BasicGetParams): Promise<Delivery | null>;
  /** basic.consume: resolves with the consumer tag once consume-ok arrives. */
  consume(params: BasicConsumeParams, onDelivery: (delivery: Delivery) => void): Promise<string>;
  cancel(params: BasicCancelParams): Promise<void>;

  /** basic.ack. Throws when the channel is closed (the broker has requeued the message then). */
  ack(params: BasicAckParams): void;
  /** basic.reject. Throws when the channel is closed. */
  reject(params: BasicRejectParams): void;
  qos(params: BasicQosParams): Promise<void>;
  /** basic.recover: redeliver unacked messages. */
  recover(params: BasicRecoverParams): Promise<void>;
  /** channel.flow. Transports that cannot honour it emulate it by pausing delivery. */
  flow(params: ChannelFlowParams): Promise<void>;

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
  createChannel(options?: TransportChannelOptions): Promise<TransportChannel>;
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
  /**
   * The protocol of the transport that serves it: the URL's scheme, or the scheme an alias
   * stands for (`pyamqp://` gives `amqp`). See `registerTransport`.
   */
  protocol: string;
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

/**
 * A transport: knows how to open connections for the addresses of its scheme(s). Built-in:
 * `amqp` (serves `amqp://` and `amqps://`) and `memory`; more are plugged in with
 * `registerTransport`.
 */
export interface Transport {
  /** A short name for logs and diagnostics, e.g. `'amqp'`. */
  readonly name: string;
  /** Opens a connection to one address. Rejects with a typed error (CONNECTION_REFUSED, ACCESS_REFUSED, ...). */
  connect(address: BrokerAddress, options?: ConnectOptions): Promise<TransportConnection>;
}
