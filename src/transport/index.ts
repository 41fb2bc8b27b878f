/**
 * The `celery-amqp-backend/transport` entry point: the layer under kombu, for code that
 * plugs in or inspects a transport (the Transport interface, the embedded broker of
 * `memory://`, broker URL parsing). Applications use the main entry point; the kombu
 * `Connection` chooses the transport from the URL.
 *
 * Explicit named exports only, none renamed. Some names (`ConsumeOptions`, `PublishOptions`,
 * `ChannelOptions`) are also main-entry names of a different layer: import each from the
 * entry point whose layer you drive.
 *
 * @example
 * ```ts
 * import { MemoryBroker, parseBrokerUrl } from 'celery-amqp-backend/transport';
 *
 * parseBrokerUrl('amqp://guest:guest@localhost:5672//')[0]?.hostname; // 'localhost'
 * MemoryBroker.get().queueNames('/'); // the queues the embedded broker (memory://) holds
 * ```
 *
 * @module
 */
export type {
  BrokerAddress,
  ChannelOptions,
  ConnectOptions,
  ConsumeOptions,
  Delivery,
  DeliveryInfo,
  ExchangeDeclareOptions,
  ExchangeType,
  FieldTable,
  FieldValue,
  MessageProperties,
  PublishOptions,
  QueueDeclareOk,
  QueueDeclareOptions,
  ReturnedMessage,
  TlsOptions,
  Transport,
  TransportChannel,
  TransportChannelEvents,
  TransportConnection,
  TransportConnectionEvents,
} from './types.js';
export { DEFAULT_BROKER_URL, formatBrokerUrl, parseBrokerUrl, redactUrl, resolveBrokerUrl } from './url.js';
export type { FormatBrokerUrlOptions } from './url.js';
export { MemoryBroker, resolveBroker, transportFor } from './registry.js';
export type { MemoryExchangeInfo, MemoryQueueInfo } from './registry.js';
