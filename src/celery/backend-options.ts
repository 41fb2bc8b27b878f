/**
 * Options of the result backends: what AMQPBackend and RPCBackend share (the connection,
 * Celery settings, serialization, expiry, confirms, the store retry policy, the result cache
 * and the logger), and each backend's own. camelCase options win over `settings`.
 *
 * Units: `expires` is in seconds, as Celery's `AMQPBackend(expires=...)` and `result_expires`;
 * the retry policy's intervals are milliseconds, as every JS-named duration.
 *
 * @module
 */
import type { Connection } from '../kombu/connection.js';
import type { DecodeLimits } from '../kombu/decode-limits.js';
import type { RetryPolicy } from '../kombu/retry.js';
import type { Logger } from '../logger.js';
import type { CelerySettings } from './settings.js';

/**
 * Options both result backends take.
 *
 * @example
 * ```ts
 * const common: BackendCommonOptions = { connection: 'amqp://guest:guest@127.0.0.1:5672//', expires: 3600 };
 * ```
 */
export interface BackendCommonOptions {
  /**
   * A kombu Connection (not closed by the backend) or a broker URL (closed on close).
   * `memory://` (the embedded broker) only when named.
   * @default `CELERY_BROKER_URL`, else 'amqp://guest:guest@localhost:5672//' (as Celery)
   */
  connection?: Connection | string | undefined;
  /** Celery settings by their 4.x or 3.1 names, in Celery units (result_expires in seconds). @default {} */
  settings?: Partial<CelerySettings> | undefined;
  /** delivery_mode 2 (and, for AMQPBackend, durable exchange and queues) instead of 1. @default the backend's */
  persistent?: boolean | undefined;
  /** Result serializer. @default settings.result_serializer ('json') */
  serializer?: string | undefined;
  /** Accepted serializers / mime types; the result serializer is always added. @default settings.accept_content (['json']) */
  accept?: readonly string[] | undefined;
  /** Compression name or mime of stored results. @default settings.result_compression (none) */
  compression?: string | null | undefined;
  /**
   * Result queue `x-expires` in **seconds** (Celery's `expires`); null for none (0 is
   * refused: RabbitMQ answers `x-expires: 0` with 406).
   * @default settings.result_expires (86400, one day)
   */
  expires?: number | null | undefined;
  /**
   * Store the request's fields with each result (Celery's `result_extended`): name, args,
   * kwargs, worker, retries, queue and stamps, in the backend's Celery layout.
   * @default settings.result_extended (false)
   */
  extended?: boolean | undefined;
  /** Publisher confirms: storeResult resolves once the broker has the result. @default true */
  confirmPublish?: boolean | undefined;
  /**
   * Retry policy of stores on connection errors (intervals in ms), merged over
   * {@link DEFAULT_STORE_RETRY_POLICY}: `{ intervalStart: 100 }` keeps the 20 retries.
   * @default DEFAULT_STORE_RETRY_POLICY
   */
  retryPolicy?: RetryPolicy | undefined;
  /**
   * Limits on what decoding one received result may cost (sizes in bytes, nesting depth,
   * YAML alias / pickle reference expansion, collections, pickle memo), merged over
   * `DEFAULT_DECODE_LIMITS`: 64 MiB as received and decompressed, depth 1,000, 1,000,000
   * collections expanded by aliases, 1,000,000 collections, 1,000,000 memo entries. A result
   * crossing one rejects the call reading it with a `DecodeLimitError` (code
   * `BODY_TOO_LARGE`, `TOO_DEEP`, `TOO_MANY_ALIASES` or `MEMO_TOO_LARGE`) naming the task
   * and the limit. Stores refuse (`EncodeLimitError`) a result a reader with the same
   * limits would refuse for its depth or its size. Celery has no setting for these.
   * @default DEFAULT_DECODE_LIMITS
   */
  decodeLimits?: Partial<DecodeLimits> | undefined;
  /**
   * Shorthand for `decodeLimits.maxDecodedBytes` (wins over it when both are given).
   * @default undefined (decodeLimits.maxDecodedBytes, 64 MiB)
   */
  maxBodyBytes?: number | undefined;
  /**
   * READY results kept in memory (Celery's result_cache_max): -1 off, 0 unlimited, n most
   * recently used. @default settings.result_cache_max (10000)
   */
  cacheMax?: number | undefined;
  /** Where errors nobody listens for ('error' event) are written. @default consoleLogger */
  logger?: Logger | undefined;
}

/**
 * Celery's retry policy for result publishes (`retry_policy` of the AMQP and RPC backends:
 * 20 tries sleeping 0, 1, 1, 1, ... s), in ms.
 *
 * @example
 * ```ts
 * new AMQPBackend({ retryPolicy: { maxRetries: 5 } }); // merged: 0, 1000, 1000, ... ms
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
  /**
   * Auto-delete task queues (Celery's), and delete a queue a read emptied; false keeps
   * x-expires only (no loss when a consumer leaves). @default true
   */
  autoDelete?: boolean | undefined;
  /** Channels the store path spreads concurrent stores over. @default 16 */
  storeChannels?: number | undefined;
}
