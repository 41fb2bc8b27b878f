/**
 * celery-amqp-backend: Celery's AMQP and RPC result backends, Celery's task protocol, and the
 * kombu messaging layer for Node.js, wire-compatible with Python Celery over RabbitMQ, with an
 * embedded in-process broker (`memory://`).
 *
 * Explicit named exports only, none renamed: this list is the public API. The transport layer
 * (the Transport interface, the embedded broker's inspection API, broker URL helpers) is the
 * separate entry point `celery-amqp-backend/transport`.
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
  CallbackError,
  CeleryAmqpError,
  ChannelError,
  ConnectionError,
  ContentDisallowedError,
  DecodeError,
  DecodeLimitError,
  EncodeError,
  EncodeLimitError,
  MessageStateError,
  NotBoundError,
  QueueLostError,
  TRANSIENT_QUEUE_FIXES,
  TimeoutError,
  TransientQueueDeniedError,
  fromReply,
  redact,
  replyCodeName,
} from './errors.js';
export type { AmqpReplyCode, ClientErrorCode, ErrorCode, ErrorOptions } from './errors.js';

// Logging: what the `logger` options of the backends, Connection and Worker take.
export { consoleLogger, silentLogger } from './logger.js';
export type { Logger } from './logger.js';

// AMQP value types that kombu's and Celery's signatures use. The transport layer itself (the
// Transport interface, the embedded broker, URL parsing) is the 'celery-amqp-backend/transport'
// entry point.
export type {
  BasicAckParams,
  BasicCancelParams,
  BasicConsumeParams,
  BasicGetParams,
  BasicPublishParams,
  BasicQosParams,
  BasicRecoverParams,
  BasicRejectParams,
  ChannelFlowParams,
  ChannelMethodParams,
  DeliveryInfo,
  ExchangeBindParams,
  ExchangeDeclareParams,
  ExchangeDeleteParams,
  ExchangeType,
  ExchangeUnbindParams,
  FieldTable,
  FieldValue,
  MessageProperties,
  QueueBindParams,
  QueueDeclareOk,
  QueueDeclareParams,
  QueueDeleteParams,
  QueuePurgeParams,
  QueueUnbindParams,
  ReturnedMessage,
  TlsOptions,
} from './transport/types.js';

// kombu
export { Connection } from './kombu/connection.js';
export type { ConnectionEvents, ConnectionOptions } from './kombu/connection.js';
export type { FailoverStrategy } from './transport/url.js';
export { Channel } from './kombu/channel.js';
export type { MessageHandler } from './kombu/channel-consumers.js';
export type {
  CallOptions,
  ChannelEvents,
  ChannelOptions,
  RecoveringChannel,
  RecoveryHook,
} from './kombu/channel-types.js';
export { ManyQueueConsumer } from './kombu/many-queue-consumer.js';
export type { ManyQueueConsumerEvents, ManyQueueConsumerOptions } from './kombu/many-queue-consumer.js';
export { Exchange } from './kombu/exchange.js';
export type { ExchangeMessageOptions, ExchangeOptions, ExchangePublishOptions } from './kombu/exchange.js';
export { NoCacheQueue, Queue } from './kombu/queue.js';
export type { QueueGetOptions, QueueOptions } from './kombu/queue.js';
export { Binding } from './kombu/binding.js';
export type { Bindable } from './kombu/binding.js';
export type { BindToOptions, ChannelLike } from './kombu/entity.js';
export type { Arguments, Declarable, DeliveryModeLike, OutgoingMessage } from './kombu/types.js';
export { Producer } from './kombu/producer.js';
export type { OnReturn, ProducerOptions, PublishOptions } from './kombu/producer.js';
export { Consumer } from './kombu/consumer.js';
export type { ConsumerCallback, ConsumerEvents, ConsumerOptions } from './kombu/consumer.js';
export { Message } from './kombu/message.js';
export type { MessageOptions, MessageState } from './kombu/message.js';
export { DEFAULT_RETRY_POLICY, retryIntervals, retryOverTime } from './kombu/retry.js';
export type { RetryOverTimeOptions, RetryPolicy, WaitOptions } from './kombu/retry.js';
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
  compressionReady,
  prepareCompression,
  decompress,
  registerCompression,
  unregisterCompression,
} from './kombu/compression.js';
export type { CompressedBody, CompressionOptions, Compressor, Decompressor } from './kombu/compression.js';
export { decodeBody } from './kombu/compression.js';
export type { DecodeBodyOptions } from './kombu/compression.js';
export { DEFAULT_DECODE_LIMITS, resolveDecodeLimits } from './kombu/decode-limits.js';
export type { DecodeContext, DecodeLimits, DecodeOptions } from './kombu/decode-limits.js';
export {
  JSON_FORMAT,
  PYTHON_JSON_FORMAT,
  measureValue,
  writeJson,
  writeValue,
} from './kombu/value-writer.js';
export type {
  ValueFormat,
  ValueSize,
  WriteJsonOptions,
  WriteLimits,
  WriteOptions,
} from './kombu/value-writer.js';
export { PickledObject } from './kombu/pickle.js';
export {
  DELAY_BITS,
  MAX_DELAY_LEVEL,
  MAX_DELAY_SECONDS,
  bindQueueToNativeDelayedDelivery,
  calculateRoutingKey,
  declareNativeDelayedDelivery,
  delayQueueArguments,
  delayedBindingKey,
  delayedEntryExchange,
  deliveryExchangeName,
  levelName,
} from './kombu/native-delayed-delivery.js';
export type { DelayQueueType, DelayedDeliveryOptions } from './kombu/native-delayed-delivery.js';

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
export type {
  GetManyOptions,
  GetMetaOptions,
  ReadOptions,
  ResultBackend,
  ResultWaitOptions,
  StoreOptions,
  TaskMeta,
  TaskRequest,
  WaitForOptions,
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
export { TaskQueues, checkQueueType, taskRoute } from './celery/task-queues.js';
export type { QueueType, TaskQueueSettings, TaskRoute } from './celery/task-queues.js';
// The decoded task message a Worker's handler sees (the codec itself stays internal).
export type { TaskEmbed, TaskMessage } from './celery/task-message.js';
export { Worker } from './celery/worker.js';
export type { TaskContext, TaskHandler, WorkerOptions } from './celery/worker.js';
export {
  InvalidTaskError,
  MaxRetriesExceededError,
  Retry,
  SoftTimeLimitExceeded,
  TaskTerminated,
  TimeLimitExceeded,
  WorkerLostError,
} from './celery/worker.js';
export type {
  CloseOptions,
  RetryOptions,
  TaskDefinition,
  TaskInfo,
  TaskOptions,
  WorkerCounters,
  WorkerEvents,
  WorkerSettings,
} from './celery/worker.js';
export { Control } from './celery/control.js';
export { Inspect } from './celery/inspect.js';
export type { BroadcastOptions, CommandOptions, InspectOptions, NodeReply } from './celery/control.js';
