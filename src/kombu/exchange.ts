/**
 * The Exchange declaration (kombu's `entity.Exchange`).
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import type {
  ExchangeDeclareParams,
  ExchangeType,
  FieldTable,
  MessageProperties,
} from '../transport/types.js';
import { Binding } from './binding.js';
import type { Channel } from './channel.js';
import type { CallOptions } from './channel-types.js';
import { applyBinding, requireChannel, toChannel } from './entity.js';
import type { BindToOptions, ChannelLike } from './entity.js';
import type { WaitOptions } from './retry.js';
import { toDeliveryMode } from './types.js';
import type { Declarable, DeliveryModeLike, OutgoingMessage } from './types.js';

/** Options of an {@link Exchange}. */
export interface ExchangeOptions {
  /** Routing algorithm. @default 'direct' */
  type?: ExchangeType | string;
  /** Survives a broker restart. @default true */
  durable?: boolean;
  /** Deleted when its last binding goes. @default false */
  autoDelete?: boolean;
  /** Default delivery mode of messages published through it. @default 2 */
  deliveryMode?: DeliveryModeLike;
  /** Declare arguments. @default undefined */
  arguments?: FieldTable;
  /** Only check that it exists. @default false */
  passive?: boolean;
  /** Internal exchange (only exchange-to-exchange bindings publish to it). @default false */
  internal?: boolean;
  /** The channel (or connection) to bind to. @default unbound */
  channel?: ChannelLike;
}

/** Options of {@link Exchange.Message}. */
export interface ExchangeMessageOptions {
  /** @default the exchange's deliveryMode */
  deliveryMode?: DeliveryModeLike;
  /** @default undefined */
  priority?: number;
  /** @default undefined */
  contentType?: string;
  /** @default undefined */
  contentEncoding?: string;
  /** Other basic.properties. @default {} */
  properties?: MessageProperties;
  /** @default {} */
  headers?: FieldTable;
}

/** Options of {@link Exchange.publish}. */
export interface ExchangePublishOptions extends WaitOptions {
  /** @default '' */
  routingKey?: string;
  /** Return the message when unroutable (channel event 'return'). @default false */
  mandatory?: boolean;
  /** Publish to this exchange name instead. @default this exchange */
  exchange?: string;
}

/**
 * An exchange. Unbound instances are declarations; {@link bind} gives a copy bound to a
 * channel, on which the operations run.
 *
 * @example
 * ```ts
 * const results = new Exchange('celeryresults', { type: 'direct', durable: true });
 * const bound = results.bind(connection);
 * await bound.declare();
 * await bound.publish(bound.Message('{"a":1}', { contentType: 'application/json' }), { routingKey: 'k' });
 * ```
 */
export class Exchange implements Declarable {
  /** The name; `''` is the default exchange. @default '' */
  readonly name: string;
  /** @default 'direct' */
  readonly type: ExchangeType | string;
  /** @default true */
  readonly durable: boolean;
  /** @default false */
  readonly autoDelete: boolean;
  /** 1 (transient) or 2 (persistent). @default 2 */
  readonly deliveryMode: 1 | 2;
  /** @default undefined */
  readonly arguments: FieldTable | undefined;
  /** @default false */
  readonly passive: boolean;
  /** @default false */
  readonly internal: boolean;
  /** The bound channel, `undefined` when unbound. */
  readonly channel: Channel | undefined;
  #cacheKey: string | undefined;

  constructor(name = '', options: ExchangeOptions = {}) {
    if (typeof name !== 'string') throw new ArgumentError('exchange name must be a string');
    this.name = name;
    this.type = options.type ?? 'direct';
    this.durable = options.durable ?? true;
    this.autoDelete = options.autoDelete ?? false;
    this.deliveryMode = toDeliveryMode(options.deliveryMode ?? 2);
    this.arguments = options.arguments;
    this.passive = options.passive ?? false;
    this.internal = options.internal ?? false;
    this.channel = options.channel === undefined ? undefined : toChannel(options.channel);
  }

  /** The declaration attributes (kombu's `attrs`), e.g. for copying or comparing. */
  get attrs(): {
    name: string;
    type: string;
    arguments: FieldTable | undefined;
    durable: boolean;
    passive: boolean;
    autoDelete: boolean;
    deliveryMode: 1 | 2;
  } {
    return {
      name: this.name,
      type: this.type,
      arguments: this.arguments,
      durable: this.durable,
      passive: this.passive,
      autoDelete: this.autoDelete,
      deliveryMode: this.deliveryMode,
    };
  }

  /** False when auto-delete: the broker may drop it at any time, so maybeDeclare always declares. */
  get canCacheDeclaration(): boolean {
    return !this.autoDelete;
  }

  /** Identity for maybeDeclare's cache (computed once). */
  get cacheKey(): string {
    this.#cacheKey ??= `exchange\0${this.name}\0${this.type}\0${this.durable}\0${this.autoDelete}\0${JSON.stringify(this.arguments ?? null)}`;
    return this.#cacheKey;
  }

  /** True when bound to a channel. */
  get isBound(): boolean {
    return this.channel !== undefined;
  }

  /**
   * A copy bound to `channel` (kombu's `exchange(channel)`).
   *
   * @example
   * ```ts
   * const bound = exchange.bind(await connection.channel());
   * ```
   */
  bind(channel: ChannelLike): Exchange {
    const copy = new Exchange(this.name, {
      type: this.type,
      durable: this.durable,
      autoDelete: this.autoDelete,
      deliveryMode: this.deliveryMode,
      passive: this.passive,
      internal: this.internal,
      channel,
      ...(this.arguments === undefined ? {} : { arguments: this.arguments }),
    });
    copy.#cacheKey = this.#cacheKey;
    return copy;
  }

  #ch(): Channel {
    return requireChannel(this.channel, `Exchange ${JSON.stringify(this.name)}`);
  }

  /**
   * Declares the exchange (nothing for the default exchange `''`).
   *
   * @param options - `nowait` (no round trip; errors close the channel later), `passive`,
   *   `recover` (false: not replayed after a reconnect; default: the channel's choice).
   * @throws ChannelError (PRECONDITION_FAILED) when it exists with other attributes.
   * @example
   * ```ts
   * await exchange.bind(channel).declare();
   * ```
   */
  declare(options: { nowait?: boolean; passive?: boolean } & CallOptions = {}): Promise<void> {
    if (this.name === '') return Promise.resolve();
    return this.#ch().declareExchange(this.declareParams(options), options);
  }

  /**
   * The exchange.declare parameters of this declaration, as {@link declare} sends them (for a
   * hot path that builds them once).
   *
   * @param options - `nowait` @default false; `passive` @default this exchange's
   * @example
   * ```ts
   * const params = exchange.declareParams({ nowait: true });
   * ```
   */
  declareParams(options: { nowait?: boolean; passive?: boolean } = {}): ExchangeDeclareParams {
    return {
      exchange: this.name,
      type: this.type,
      durable: this.durable,
      autoDelete: this.autoDelete,
      internal: this.internal,
      passive: options.passive ?? this.passive,
      nowait: options.nowait ?? false,
      ...(this.arguments === undefined ? {} : { arguments: this.arguments }),
    };
  }

  /**
   * Deletes the exchange.
   *
   * @param options - `ifUnused` (only without bindings) @default false; `nowait` @default false.
   * @example
   * ```ts
   * await exchange.delete({ ifUnused: true });
   * ```
   */
  delete(options: { ifUnused?: boolean; nowait?: boolean } & WaitOptions = {}): Promise<void> {
    return this.#ch().deleteExchange(
      { exchange: this.name, ifUnused: options.ifUnused ?? false, nowait: options.nowait ?? false },
      options,
    );
  }

  /**
   * Binds this exchange (destination) to `exchange` (source).
   *
   * @example
   * ```ts
   * await dest.bindTo(source, { routingKey: 'a.*' });
   * ```
   */
  bindTo(exchange: Exchange | string = '', options: BindToOptions = {}): Promise<void> {
    return applyBinding(this.#ch(), 'exchange', this.name, exchange, options, false);
  }

  /**
   * Removes a binding created by {@link bindTo}.
   *
   * @example
   * ```ts
   * await dest.unbindFrom(source, { routingKey: 'a.*' });
   * ```
   */
  unbindFrom(source: Exchange | string = '', options: BindToOptions = {}): Promise<void> {
    return applyBinding(this.#ch(), 'exchange', this.name, source, options, true);
  }

  /**
   * A {@link Binding} to this exchange.
   *
   * @example
   * ```ts
   * new Queue('q', { bindings: [logs.binding('info')] });
   * ```
   */
  binding(routingKey = '', args?: FieldTable, unbindArguments?: FieldTable): Binding {
    return new Binding(this, routingKey, args, unbindArguments);
  }

  /**
   * A message ready for {@link publish}. The body is sent as is (no serialization): a string
   * is encoded as UTF-8.
   *
   * @example
   * ```ts
   * const m = exchange.Message('hello', { contentType: 'text/plain', contentEncoding: 'utf-8' });
   * ```
   */
  Message(body: Buffer | Uint8Array | string, options: ExchangeMessageOptions = {}): OutgoingMessage {
    const properties: MessageProperties = { ...(options.properties ?? {}) };
    properties.deliveryMode = toDeliveryMode(options.deliveryMode ?? this.deliveryMode);
    if (options.priority !== undefined) properties.priority = options.priority;
    if (options.contentType !== undefined) properties.contentType = options.contentType;
    if (options.contentEncoding !== undefined) properties.contentEncoding = options.contentEncoding;
    properties.headers = { ...(properties.headers ?? {}), ...(options.headers ?? {}) };
    const buf =
      typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.isBuffer(body) ? body : Buffer.from(body);
    return { body: buf, properties };
  }

  /**
   * Publishes a message built by {@link Message}.
   *
   * @example
   * ```ts
   * await exchange.publish(exchange.Message('x'), { routingKey: 'k', mandatory: true });
   * ```
   */
  publish(message: OutgoingMessage, options: ExchangePublishOptions = {}): Promise<void> {
    return this.#ch().publish(
      {
        exchange: options.exchange ?? this.name,
        routingKey: options.routingKey ?? '',
        body: message.body,
        properties: message.properties,
        mandatory: options.mandatory ?? false,
      },
      options,
    );
  }
}
