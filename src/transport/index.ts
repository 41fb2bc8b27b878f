/**
 * The `celery-amqp-backend/transport` entry point: the layer under kombu, for code that
 * plugs in or inspects a transport (the Transport interface, the embedded broker of
 * `memory://`, broker URL parsing). Applications use the main entry point; the kombu
 * `Connection` chooses the transport from the URL.
 *
 * Explicit named exports only, none renamed. The per-operation parameter types
 * (`QueueDeclareParams`, ...) are main-entry names: kombu's Channel takes them too.
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
  ConnectOptions,
  Delivery,
  DeliveryInfo,
  ExchangeType,
  FieldTable,
  FieldValue,
  MessageProperties,
  QueueDeclareOk,
  ReturnedMessage,
  TlsOptions,
  Transport,
  TransportChannel,
  TransportChannelEvents,
  TransportChannelOptions,
  TransportConnection,
  TransportConnectionEvents,
} from './types.js';
export {
  DEFAULT_BROKER_URL,
  formatBrokerUrl,
  parseBrokerUrl,
  redactUrl,
  resolveBroker,
  resolveBrokerUrl,
} from './url.js';
export type { FailoverStrategy, FormatBrokerUrlOptions } from './url.js';
export { MemoryBroker, registerTransport, registeredSchemes, schemeInfo, transportFor } from './registry.js';
export type {
  MemoryExchangeInfo,
  MemoryQueueInfo,
  RegisterTransportOptions,
  TransportFactory,
  VirtualHostSettings,
} from './registry.js';
