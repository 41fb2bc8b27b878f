/**
 * The Producer (kombu's `messaging.Producer`): serializes, compresses and publishes.
 *
 * @module
 */
import { ArgumentError, fromReply } from '../errors.js';
import type { CeleryAmqpError } from '../errors.js';
import type {
  BasicPublishParams,
  FieldTable,
  MessageProperties,
  ReturnedMessage,
} from '../transport/types.js';
import type { Channel } from './channel.js';
import { compress, compressionReady, prepareCompression } from './compression.js';
import type { DecodeLimits } from './decode-limits.js';
import { toChannel } from './entity.js';
import type { ChannelLike } from './entity.js';
import { Exchange } from './exchange.js';
import type { RetryPolicy, WaitOptions } from './retry.js';
import { dumps } from './serialization.js';
import { toDeliveryMode } from './types.js';
import type { Declarable, DeliveryModeLike } from './types.js';

/** Called for an unroutable mandatory message: (error, exchange, routingKey, message). */
export type OnReturn = (
  error: CeleryAmqpError,
  exchange: string,
  routingKey: string,
  message: ReturnedMessage,
) => void;

/** Options of a {@link Producer}. */
export interface ProducerOptions {
  /** Default exchange. @default the default exchange `''` */
  exchange?: Exchange | string;
  /** Default routing key. @default '' */
  routingKey?: string;
  /** Default serializer. @default 'json' */
  serializer?: string;
  /** Default compression (name or mime). @default undefined */
  compression?: string;
  /** Declare the default exchange before the first publish. @default true */
  autoDeclare?: boolean;
  /** Called for unroutable mandatory messages. @default undefined */
  onReturn?: OnReturn;
  /**
   * A body deeper than `maxDepth` or longer than `maxDecodedBytes` once serialized is
   * refused with an EncodeLimitError (see `dumps`). @default DEFAULT_DECODE_LIMITS
   */
  limits?: Partial<DecodeLimits> | undefined;
}

/** Options of {@link Producer.publish}. Unknown keys are not accepted: use `properties`. */
export interface PublishOptions extends WaitOptions {
  /** @default the producer's routingKey */
  routingKey?: string;
  /** @default the exchange's deliveryMode */
  deliveryMode?: DeliveryModeLike;
  /** @default false */
  mandatory?: boolean;
  /** @default 0 */
  priority?: number;
  /** When set, the body is sent as is (Buffer or string): no serialization. @default undefined */
  contentType?: string;
  /** @default 'utf-8' for a string body, 'binary' for bytes (when contentType is given) */
  contentEncoding?: string;
  /** @default the producer's serializer */
  serializer?: string;
  /** @default {} */
  headers?: FieldTable;
  /** @default the producer's compression */
  compression?: string;
  /** Publish to this exchange instead (it must be declared). @default the producer's */
  exchange?: Exchange | string;
  /** Retry (reconnecting) on connection errors. @default false */
  retry?: boolean;
  /** Policy when `retry`. @default kombu's, forever */
  retryPolicy?: RetryPolicy & { onRetry?: (err: unknown, attempt: number, sleepMs: number) => void };
  /** Entities to maybeDeclare before publishing. @default [] */
  declare?: readonly Declarable[];
  /** Declare the `declare` entities with nowait (pipelined, no round trip). @default false */
  declareNowait?: boolean;
  /**
   * Remember the `declare` entities for replay after a reconnect. The result store path
   * passes false: it declares before every publish anyway. @default the channel's choice
   */
  recoverDeclarations?: boolean;
  /** @default undefined */
  correlationId?: string;
  /** @default undefined */
  replyTo?: string;
  /** Per-message TTL in ms. @default undefined */
  expiration?: number | string;
  /** Other basic.properties. @default {} */
  properties?: MessageProperties;
  /** Names the body in encode errors, e.g. `result of task <id>`. @default undefined */
  label?: string;
}

/**
 * Publishes messages to an exchange.
 *
 * @example
 * ```ts
 * const producer = new Producer(connection, { exchange: new Exchange('celeryresults'), serializer: 'json' });
 * await producer.publish({ status: 'SUCCESS' }, { routingKey: 'abc', correlationId: 'abc' });
 * ```
 */
export class Producer {
  /** The channel used. */
  channel: Channel;
  /** The default exchange, bound to {@link channel}. */
  exchange: Exchange;
  /** @default '' */
  routingKey: string;
  /** @default 'json' */
  serializer: string;
  /** @default undefined */
  compression: string | undefined;
  /** @default true */
  autoDeclare: boolean;
  /** @default undefined */
  onReturn: OnReturn | undefined;
  /** Limits of the bodies serialized. @default undefined (DEFAULT_DECODE_LIMITS) */
  limits: Partial<DecodeLimits> | undefined;
  readonly #returnListener = (m: ReturnedMessage): void => {
    this.onReturn?.(fromReply(m.replyCode, m.replyText), m.exchange, m.routingKey, m);
  };

  constructor(channel: ChannelLike, options: ProducerOptions = {}) {
    this.channel = toChannel(channel);
    const ex = options.exchange ?? '';
    this.exchange = (typeof ex === 'string' ? new Exchange(ex) : ex).bind(this.channel);
    this.routingKey = options.routingKey ?? '';
    this.serializer = options.serializer ?? 'json';
    this.compression = options.compression;
    this.autoDeclare = options.autoDeclare ?? true;
    this.onReturn = options.onReturn;
    this.limits = options.limits;
    this.channel.on('return', this.#returnListener);
  }

  /** The connection of the channel. */
  get connection(): Channel['connection'] {
    return this.channel.connection;
  }

  /**
   * Declares the default exchange (not the default `''` one).
   *
   * @example
   * ```ts
   * await producer.declare();
   * ```
   */
  async declare(): Promise<void> {
    if (this.exchange.name !== '') await this.exchange.declare();
  }

  /**
   * Declares `entity` unless already declared on this connection (cached in
   * `connection.declaredEntities`, cleared on reconnect; entities with
   * `canCacheDeclaration === false` are always declared).
   *
   * @returns true when declared now, false when the cache said it already was.
   * @example
   * ```ts
   * await producer.maybeDeclare(exchange); // true, then false
   * ```
   */
  maybeDeclare(
    entity: Declarable,
    options: { retry?: boolean; retryPolicy?: RetryPolicy; nowait?: boolean } = {},
  ): Promise<boolean> {
    const r = this.#maybeDeclare(entity, options.nowait ?? false);
    if (r === false) return Promise.resolve(false);
    if (options.retry !== true) return r.then(() => true);
    return this.connection
      .ensure(() => this.#maybeDeclare(entity, false) || Promise.resolve(), options.retryPolicy ?? {})
      .then(() => true);
  }

  /** false when cached, else the declare's promise (no allocation on the cached path). */
  #maybeDeclare(entity: Declarable, nowait: boolean, recover?: boolean): false | Promise<unknown> {
    const bound = bindEntity(entity, this.channel);
    const opts = recover === undefined ? { nowait } : { nowait, recover };
    if (!bound.canCacheDeclaration) return bound.declare(opts);
    const declared = this.connection.declaredEntities;
    const key = bound.cacheKey;
    if (declared.has(key)) return false;
    return bound.declare(opts).then(() => {
      declared.add(key);
    });
  }

  /**
   * Serializes (unless `contentType` is given), compresses and publishes `body`.
   * Resolves when the transport accepted it, or on the broker's ack on a confirm channel.
   *
   * @example
   * ```ts
   * await producer.publish({ a: 1 }, { routingKey: 'k', serializer: 'msgpack', compression: 'zlib', headers: { x: 1 } });
   * ```
   */
  publish(body: unknown, options: PublishOptions = {}): Promise<void> {
    if (options.retry === true) {
      const { onRetry, ...policy } = options.retryPolicy ?? {};
      return this.connection.ensure(() => this.#publish(body, options), {
        ...policy,
        ...(onRetry === undefined ? {} : { onRetry }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    }
    return this.#publish(body, options);
  }

  #publish(body: unknown, options: PublishOptions): Promise<void> {
    const method = options.compression ?? this.compression;
    // A compressor that must start first (zstd's WebAssembly) is started once, then used sync.
    if (method !== undefined && !compressionReady(method)) {
      return prepareCompression(method).then(() => this.#publish(body, options));
    }
    let encoded: Buffer;
    let contentType = options.contentType;
    let contentEncoding = options.contentEncoding;
    if (contentType !== undefined) {
      if (typeof body === 'string') {
        encoded = Buffer.from(body, 'utf8');
        contentEncoding ??= 'utf-8';
      } else if (body instanceof Uint8Array) {
        encoded = Buffer.isBuffer(body) ? body : Buffer.from(body);
        contentEncoding ??= 'binary';
      } else {
        throw new ArgumentError('with contentType set the body must be a Buffer or a string');
      }
    } else {
      const d = dumps(body, options.serializer ?? this.serializer, {
        limits: this.limits,
        label: options.label,
      });
      encoded = d.body;
      contentType = d.contentType;
      contentEncoding = d.contentEncoding;
    }
    const headers: FieldTable = options.headers === undefined ? {} : { ...options.headers };
    if (method !== undefined) {
      const c = compress(encoded, method);
      encoded = c.body;
      headers['compression'] = c.contentType;
    }
    const properties: MessageProperties = {
      ...options.properties,
      contentType,
      contentEncoding,
      headers,
      deliveryMode:
        options.deliveryMode === undefined
          ? this.exchange.deliveryMode
          : toDeliveryMode(options.deliveryMode),
      priority: options.priority ?? 0,
    };
    if (options.correlationId !== undefined) properties.correlationId = options.correlationId;
    if (options.replyTo !== undefined) properties.replyTo = options.replyTo;
    if (options.expiration !== undefined) properties.expiration = String(options.expiration);

    const ex = options.exchange;
    const exchangeName = ex === undefined ? this.exchange.name : typeof ex === 'string' ? ex : ex.name;
    const routingKey = options.routingKey ?? this.routingKey;
    const publish: BasicPublishParams = { exchange: exchangeName, routingKey, body: encoded, properties };
    if (options.mandatory === true) publish.mandatory = true;
    const channel = this.channel;

    // Declarations first; cached ones cost nothing, and with declareNowait nothing is awaited:
    // the channel keeps call order, so the broker sees declare, bind, publish in that order.
    let pending: Promise<unknown> | undefined;
    const nowait = options.declareNowait === true;
    if (this.autoDeclare && this.exchange.name !== '') {
      const r = this.#maybeDeclare(this.exchange, nowait);
      if (r !== false) pending = r;
    }
    const declare = options.declare;
    if (declare !== undefined) {
      const recover = options.recoverDeclarations;
      for (const entity of declare) {
        if (pending !== undefined && !nowait) {
          const prev: Promise<unknown> = pending;
          pending = prev.then(() => this.#maybeDeclare(entity, false, recover));
          continue;
        }
        const r = this.#maybeDeclare(entity, nowait, recover);
        if (r === false) continue;
        pending = pending === undefined ? r : Promise.all([pending, r]);
      }
    }
    if (pending === undefined || nowait) {
      const sent = channel.publish(publish, options);
      if (pending === undefined) return sent;
      return Promise.all([pending, sent]).then(() => undefined);
    }
    return pending.then(() => channel.publish(publish, options));
  }

  /**
   * Moves the producer to another channel (after a connection loss, kombu's `revive`).
   *
   * @example
   * ```ts
   * producer.revive(await connection.channel());
   * ```
   */
  revive(channel: ChannelLike): void {
    this.channel.off('return', this.#returnListener);
    this.channel = toChannel(channel);
    this.exchange = this.exchange.bind(this.channel);
    this.channel.on('return', this.#returnListener);
  }

  /**
   * Detaches the producer from its channel's events (the channel stays open).
   *
   * @example
   * ```ts
   * producer.close();
   * ```
   */
  close(): void {
    this.channel.off('return', this.#returnListener);
  }
}

/** An entity bound to `channel` (a copy when bound elsewhere or unbound). */
function bindEntity(entity: Declarable, channel: Channel): Declarable {
  if (entity.channel === channel || entity.bind === undefined) return entity;
  return entity.bind(channel);
}
