/**
 * celery-amqp-backend: Celery's AMQP and RPC result backends, Celery's task protocol, and the
 * kombu messaging layer for Node.js, wire-compatible with Python Celery over RabbitMQ, with an
 * embedded in-process broker (`memory://`).
 *
 * Explicit named exports only: this list is the public API.
 *
 * @example
 * ```ts
 * import { AMQPBackend, AsyncResult } from 'celery-amqp-backend';
 *
 * const backend = new AMQPBackend({ connection: 'amqp://guest:guest@127.0.0.1:5672//' });
 * const value = await new AsyncResult(taskId, backend).get({ timeout: 10_000 });
 * await backend.close();
 * ```
 *
 * @module
 */

// Errors
export {
  AMQP_REPLY_CODES,
  AbortError,
  ArgumentError,
  CeleryAmqpError,
  ChannelError,
  ConnectionError,
  ContentDisallowedError,
  DecodeError,
  EncodeError,
  MessageStateError,
  NotBoundError,
  TimeoutError,
  fromReply,
  redact,
  replyCodeName,
} from './errors.js';
export type { AmqpReplyCode, ClientErrorCode, ErrorCode, ErrorOptions } from './errors.js';

// Transport (the interface; concrete transports are chosen by URL)
export type {
  BrokerAddress,
  ConnectOptions,
  ConsumeOptions as TransportConsumeOptions,
  ChannelOptions as TransportChannelOptions,
  Delivery,
  DeliveryInfo,
  ExchangeDeclareOptions,
  ExchangeType,
  FieldTable,
  FieldValue,
  MessageProperties,
  PublishOptions as TransportPublishOptions,
  QueueDeclareOk,
  QueueDeclareOptions,
  ReturnedMessage,
  TlsOptions,
  Transport,
  TransportChannel,
  TransportChannelEvents,
  TransportConnection,
  TransportConnectionEvents,
} from './transport/types.js';
export { formatBrokerUrl, parseBrokerUrl, redactUrl } from './transport/url.js';
export type { FormatBrokerUrlOptions } from './transport/url.js';
export { MemoryBroker, resolveBroker, transportFor } from './transport/registry.js';
export type { MemoryExchangeInfo, MemoryQueueInfo } from './transport/registry.js';

// kombu
export { Connection } from './kombu/connection.js';
export type { ConnectionEvents, ConnectionOptions } from './kombu/connection.js';
export { Channel } from './kombu/channel.js';
export type { ChannelEvents, ChannelOptions, DeliveryHandler, RecoverOptions } from './kombu/channel.js';
export { Exchange } from './kombu/exchange.js';
export type { ExchangeMessageOptions, ExchangeOptions, ExchangePublishOptions } from './kombu/exchange.js';
export { NoCacheQueue, Queue } from './kombu/queue.js';
export type { QueueGetOptions, QueueOptions } from './kombu/queue.js';
export { Binding } from './kombu/binding.js';
export type { Bindable } from './kombu/binding.js';
export type { ChannelLike } from './kombu/entity.js';
export type { Arguments, Declarable, DeliveryModeLike, OutgoingMessage } from './kombu/types.js';
export { Producer } from './kombu/producer.js';
export type { OnReturn, ProducerOptions, PublishOptions } from './kombu/producer.js';
export { Consumer } from './kombu/consumer.js';
export type { ConsumerCallback, ConsumerEvents, ConsumerOptions } from './kombu/consumer.js';
export { Message } from './kombu/message.js';
export type { MessageOptions, MessageState } from './kombu/message.js';
export { DEFAULT_RETRY_POLICY, retryIntervals, retryOverTime } from './kombu/retry.js';
export type { RetryOverTimeOptions, RetryPolicy, WaitOptions as KombuWaitOptions } from './kombu/retry.js';
export {
  PICKLE_CONTENT_TYPE,
  contentTypeFor,
  dumps,
  loads,
  prepareAcceptContent,
  registerSerializer,
  serializerByName,
  unregisterSerializer,
} from './kombu/serialization.js';
export type { EncodedBody, LoadsOptions, Serializer, SerializerDefinition } from './kombu/serialization.js';
export {
  compress,
  compressionMimeFor,
  decompress,
  registerCompression,
  unregisterCompression,
} from './kombu/compression.js';
export type { CompressedBody, Compressor, DecompressOptions, Decompressor } from './kombu/compression.js';

// Celery
export {
  ALL_STATES,
  EXCEPTION_STATES,
  FAILURE,
  IGNORED,
  PENDING,
  PRECEDENCE,
  PROPAGATE_STATES,
  READY_STATES,
  RECEIVED,
  REJECTED,
  RETRY,
  REVOKED,
  STARTED,
  SUCCESS,
  UNREADY_STATES,
  compareStates,
  isPropagated,
  isReady,
  precedence,
  stateGreaterThan,
  stateLessThan,
} from './celery/states.js';
export type { State } from './celery/states.js';
export {
  BacklogLimitExceeded,
  TaskError,
  TaskRevokedError,
  exceptionFromMeta,
  exceptionToMeta,
} from './celery/exceptions.js';
export type { ExceptionMeta, TaskErrorInit } from './celery/exceptions.js';
export { JS_EXCEPTION_MODULE } from './celery/exceptions.js';
export {
  DEFAULT_RESULT_CACHE_MAX,
  DEFAULT_SETTINGS,
  expiresToMs,
  resolveSettings,
} from './celery/settings.js';
export type { CelerySettings, ResolvedSettings } from './celery/settings.js';
export { ResultCache } from './celery/result-cache.js';
export type {
  GetManyOptions,
  GetMetaOptions,
  GroupTuple,
  RestoreGroupOptions,
  ResultBackend,
  StoreOptions,
  TaskMeta,
  TaskRequest,
  WaitOptions,
} from './celery/backend-types.js';
export { AMQPBackend } from './celery/amqp-backend.js';
export { DEFAULT_STORE_RETRY_POLICY } from './celery/backend-options.js';
export type { AMQPBackendOptions, BackendCommonOptions } from './celery/backend-options.js';
export { BaseBackend } from './celery/base-backend.js';
export type { BackendDefaults, BackendEvents, ReceiveManyOptions } from './celery/base-backend.js';
export { MetaCache } from './celery/meta-cache.js';
export { WaitControl } from './celery/wait-control.js';
export type { WaitControlOptions } from './celery/wait-control.js';
export type { StateWatch } from './celery/meta-cache.js';
export { RPCBackend } from './celery/rpc-backend.js';
export type { RPCBackendOptions } from './celery/rpc-backend.js';
export {
  AsyncResult,
  GroupResult,
  ResultSet,
  groupResultFromTuple,
  resultFromTuple,
} from './celery/result.js';
export type {
  AsyncResultOptions,
  AsyncResultTuple,
  GetOptions,
  GroupResultTuple,
  JoinOptions,
  ResultTuple,
} from './celery/result.js';
export { Celery } from './celery/app.js';
export type { AppSettings, CeleryAppSettings, CeleryOptions, SendTaskOptions } from './celery/app.js';
export { decodeTaskMessage, encodeTaskMessage, parseIsoDate, taskTimes } from './celery/task-message.js';
export type {
  EncodedTaskMessage,
  RawTaskMessage,
  TaskEmbed,
  TaskMessage,
  TaskMessageInput,
  TaskTimes,
} from './celery/task-message.js';
export { Worker } from './celery/worker.js';
export type { TaskContext, TaskHandler, WorkerOptions } from './celery/worker.js';
