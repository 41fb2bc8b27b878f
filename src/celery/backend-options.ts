/**
 * Options of the result backends: what AMQPBackend and RPCBackend share (the connection,
 * Celery settings, serialization, expiry, confirms and the store retry policy), and each
 * backend's own. camelCase options win over `settings`; durations in ms.
 *
 * @module
 */
import type { Connection } from '../kombu/connection.js';
import type { RetryPolicy } from '../kombu/retry.js';
import type { CelerySettings } from './settings.js';

/**
 * Options both result backends take.
 *
 * @example
 * ```ts
 * const common: BackendCommonOptions = { connection: 'amqp://guest:guest@127.0.0.1:5672//', expires: 3_600_000 };
 * ```
 */
export interface BackendCommonOptions {
  /** A kombu Connection (not closed by the backend) or a broker URL (closed on close). @default 'memory://' */
  connection?: Connection | string | undefined;
  /** Celery settings by their 4.x or 3.1 names, in Celery units (result_expires in seconds). @default {} */
  settings?: Partial<CelerySettings> | undefined;
  /** delivery_mode 2 (and, for AMQPBackend, durable exchange and queues) instead of 1. @default the backend's */
  persistent?: boolean | undefined;
  /** Result serializer. @default settings.result_serializer ('json') */
  serializer?: string | undefined;
  /** Queue `x-expires` in ms; null for none. @default settings.result_expires (1 day) */
  expires?: number | null | undefined;
  /** Publisher confirms: storeResult resolves once the broker has the result. @default true */
  confirmPublish?: boolean | undefined;
  /** Retry policy of stores on connection errors. @default {@link DEFAULT_STORE_RETRY_POLICY} */
  retryPolicy?: RetryPolicy | undefined;
  /** Decoded body size limit in bytes. @default undefined (the serializer's) */
  maxBodyBytes?: number | undefined;
}

/**
 * Celery's retry policy for result publishes (`retry_policy` of the AMQP and RPC backends:
 * 20 tries sleeping 0, 1, 1, 1, ... s), in ms.
 *
 * @example
 * ```ts
 * new AMQPBackend({ retryPolicy: { ...DEFAULT_STORE_RETRY_POLICY, maxRetries: 5 } });
 * ```
 */
export const DEFAULT_STORE_RETRY_POLICY: Readonly<Required<RetryPolicy>> = Object.freeze({
  maxRetries: 20,
  intervalStart: 0,
  intervalStep: 1000,
  intervalMax: 1000,
});

/**
 * Options of an AMQPBackend: the common ones (persistent defaults to true) and its own.
 *
 * @example
 * ```ts
 * new AMQPBackend({ connection: url, autoDelete: false, settings: { result_expires: 3600 } });
 * ```
 */
export interface AMQPBackendOptions extends BackendCommonOptions {
  /** Result exchange name. @default 'celeryresults' */
  exchange?: string | undefined;
  /** Result exchange type. @default 'direct' */
  exchangeType?: string | undefined;
  /** Accepted serializers / mime types; the result serializer is always added. @default ['json'] */
  accept?: readonly string[] | undefined;
  /** Compression name or mime. @default none */
  compression?: string | null | undefined;
  /** Auto-delete task queues (Celery's); false keeps x-expires only (no loss when a consumer leaves). @default true */
  autoDelete?: boolean | undefined;
  /** Result cache size (Celery's result_cache_max): -1 off, 0 unlimited, n. @default -1 */
  cacheMax?: number | undefined;
  /** Channels the store path spreads concurrent stores over. @default 16 */
  storeChannels?: number | undefined;
}

/** Options of {@link AMQPBackend.consume}. */
export interface ConsumeOptions {
  /** Deadline in ms. @default undefined */
  timeout?: number | undefined;
  /** Ack (consume) the states read. @default true */
  noAck?: boolean | undefined;
  /** Called about once a second and on every non-ready state. @default undefined */
  onInterval?: (() => void) | undefined;
  /** Cancels the wait. @default undefined */
  signal?: AbortSignal | undefined;
}
