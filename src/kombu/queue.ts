/**
 * The Queue declaration (kombu's `entity.Queue`) and NoCacheQueue.
 *
 * @module
 */
import type { FieldTable, QueueDeclareOk, QueueDeclareParams } from '../transport/types.js';
import type { Binding } from './binding.js';
import type { Channel } from './channel.js';
import type { CallOptions } from './channel-types.js';
import { applyBinding, requireChannel, toChannel } from './entity.js';
import type { BindToOptions, ChannelLike } from './entity.js';
import { Exchange } from './exchange.js';
import type { Message } from './message.js';
import type { WaitOptions } from './retry.js';
import type { Declarable } from './types.js';

/** Options of a {@link Queue}. */
export interface QueueOptions {
  /** The exchange to bind to on declare. @default undefined (no binding) */
  exchange?: Exchange | string;
  /** Binding key. @default '' */
  routingKey?: string;
  /** @default true */
  durable?: boolean;
  /** Only this connection may use it; forces autoDelete. @default false */
  exclusive?: boolean;
  /** Deleted when its last consumer cancels. @default false */
  autoDelete?: boolean;
  /** Declare arguments. @default undefined */
  queueArguments?: FieldTable;
  /** Binding arguments. @default undefined */
  bindingArguments?: FieldTable;
  /** Consume arguments. @default undefined */
  consumerArguments?: FieldTable;
  /** Idle lifetime in ms: `x-expires`. @default undefined */
  expires?: number;
  /** Message TTL in ms: `x-message-ttl`. @default undefined */
  messageTtl?: number;
  /** `x-max-length`. @default undefined */
  maxLength?: number;
  /** Extra bindings declared with the queue. @default [] */
  bindings?: Binding[];
  /** Consume without acknowledgements. @default false */
  noAck?: boolean;
  /** The channel (or connection) to bind to. @default unbound */
  channel?: ChannelLike;
}

/** Options of {@link Queue.get}. */
export interface QueueGetOptions extends WaitOptions {
  /** @default the queue's noAck */
  noAck?: boolean;
  /** Accepted content types (mime set). @default undefined */
  accept?: ReadonlySet<string>;
  /** Decoded size limit. @default undefined */
  maxBytes?: number;
}

/**
 * A queue. Unbound instances are declarations; {@link bind} gives a bound copy.
 *
 * @example
 * ```ts
 * const q = new Queue('a1b2', { exchange: results, routingKey: 'a1b2', autoDelete: true, expires: 86_400_000 });
 * await q.bind(connection).declare();
 * const m = await q.bind(connection).get();
 * ```
 */
export class Queue implements Declarable {
  /** The name (`''` asks the broker for one; updated after declare). */
  name: string;
  /** @default undefined */
  readonly exchange: Exchange | undefined;
  /** @default '' */
  readonly routingKey: string;
  /** @default true */
  readonly durable: boolean;
  /** @default false */
  readonly exclusive: boolean;
  /** @default false (true when exclusive) */
  readonly autoDelete: boolean;
  /** The declare arguments, including x-expires / x-message-ttl / x-max-length. */
  readonly queueArguments: FieldTable | undefined;
  /** @default undefined */
  readonly bindingArguments: FieldTable | undefined;
  /** @default undefined */
  readonly consumerArguments: FieldTable | undefined;
  /** @default undefined */
  readonly expires: number | undefined;
  /** @default undefined */
  readonly messageTtl: number | undefined;
  /** @default undefined */
  readonly maxLength: number | undefined;
  /** @default [] */
  readonly bindings: readonly Binding[];
  /** @default false */
  readonly noAck: boolean;
  /** The bound channel, `undefined` when unbound. */
  readonly channel: Channel | undefined;
  readonly #options: QueueOptions;
  #cacheKey: string | undefined;
  #boundExchange: Exchange | undefined;

  constructor(name = '', options: QueueOptions = {}) {
    this.#options = options;
    this.name = name;
    this.exchange = typeof options.exchange === 'string' ? new Exchange(options.exchange) : options.exchange;
    this.routingKey = options.routingKey ?? '';
    this.durable = options.durable ?? true;
    this.exclusive = options.exclusive ?? false;
    this.autoDelete = this.exclusive || (options.autoDelete ?? false);
    this.expires = options.expires;
    this.messageTtl = options.messageTtl;
    this.maxLength = options.maxLength;
    this.queueArguments = buildArguments(options);
    this.bindingArguments = options.bindingArguments;
    this.consumerArguments = options.consumerArguments;
    this.bindings = options.bindings ?? [];
    this.noAck = options.noAck ?? false;
    this.channel = options.channel === undefined ? undefined : toChannel(options.channel);
  }

  /** False when auto-delete (or exclusive): maybeDeclare always declares it. */
  get canCacheDeclaration(): boolean {
    return !this.autoDelete;
  }

  /** Identity for maybeDeclare's cache. */
  get cacheKey(): string {
    this.#cacheKey ??= `queue\0${this.name}\0${this.exchange?.name ?? ''}\0${this.routingKey}\0${this.durable}\0${this.autoDelete}\0${JSON.stringify(this.queueArguments ?? null)}`;
    return this.#cacheKey;
  }

  /** True when bound to a channel. */
  get isBound(): boolean {
    return this.channel !== undefined;
  }

  /** A copy of this declaration bound to `channel`. */
  bind(channel: ChannelLike): this {
    const Ctor = this.constructor as new (name: string, options: QueueOptions) => this;
    const copy = new Ctor(this.name, { ...this.#options, channel });
    return copy;
  }

  #ch(): Channel {
    return requireChannel(this.channel, `Queue ${JSON.stringify(this.name)}`);
  }

  /** The exchange bound to `ch`, kept so that repeated declares do not copy it each time. */
  #exchangeOn(exchange: Exchange, ch: Channel): Exchange {
    if (exchange.channel === ch) return exchange;
    if (this.#boundExchange?.channel !== ch) this.#boundExchange = exchange.bind(ch);
    return this.#boundExchange;
  }

  /**
   * Declares the exchange, the queue, its binding and extra bindings, in that order.
   * With `nowait` nothing waits for the broker (errors close the channel later). With
   * `recover: false` the declarations are not replayed after a reconnect (a publish path
   * that declares before every publish); the default is the channel's choice.
   *
   * @returns The queue name (the broker's for a server-named queue).
   * @example
   * ```ts
   * await queue.bind(channel).declare();
   * ```
   */
  async declare(options: { nowait?: boolean } & CallOptions = {}): Promise<string> {
    const nowait = options.nowait ?? false;
    const ch = this.#ch();
    const exchange = this.exchange;
    if (nowait) {
      // Pipelined: the channel keeps call order, so the broker sees them in order.
      const ops: Array<Promise<unknown>> = [];
      if (exchange !== undefined && exchange.name !== '')
        ops.push(this.#exchangeOn(exchange, ch).declare(options));
      ops.push(this.queueDeclare(options));
      if (exchange !== undefined && exchange.name !== '') ops.push(this.queueBind(options));
      for (const b of this.bindings) {
        ops.push(b.declare(ch, { nowait: true, ...recoverOf(options) }));
        ops.push(b.bind(this, { nowait: true, ...recoverOf(options) }));
      }
      await Promise.all(ops);
      return this.name;
    }
    if (exchange !== undefined && exchange.name !== '') await this.#exchangeOn(exchange, ch).declare(options);
    await this.queueDeclare(options);
    if (exchange !== undefined && exchange.name !== '') await this.queueBind(options);
    for (const b of this.bindings) {
      await b.declare(ch, recoverOf(options));
      await b.bind(this, recoverOf(options));
    }
    return this.name;
  }

  /**
   * queue.declare only. Updates {@link name} for a server-named queue.
   *
   * @returns The declare-ok, or null with `nowait`.
   * @example
   * ```ts
   * const ok = await queue.queueDeclare({ passive: true }); // ok.messageCount
   * ```
   */
  async queueDeclare(
    options: { nowait?: boolean; passive?: boolean } & CallOptions = {},
  ): Promise<QueueDeclareOk | null> {
    const ok = await this.#ch().declareQueue(this.declareParams(options), options);
    if (ok !== null && this.name === '') this.name = ok.queue;
    return ok;
  }

  /**
   * The queue.declare parameters of this declaration, as {@link queueDeclare} sends them
   * (for a hot path that builds them once).
   *
   * @param options - `nowait`, `passive` @default false
   * @example
   * ```ts
   * const params = queue.declareParams({ nowait: true });
   * ```
   */
  declareParams(options: { nowait?: boolean; passive?: boolean } = {}): QueueDeclareParams {
    return {
      queue: this.name,
      durable: this.durable,
      exclusive: this.exclusive,
      autoDelete: this.autoDelete,
      passive: options.passive ?? false,
      nowait: options.nowait ?? false,
      ...(this.queueArguments === undefined ? {} : { arguments: this.queueArguments }),
    };
  }

  /**
   * Binds the queue to its exchange with its routing key and binding arguments.
   *
   * @example
   * ```ts
   * await queue.queueBind();
   * ```
   */
  queueBind(options: { nowait?: boolean } & CallOptions = {}): Promise<void> {
    return this.bindTo(this.exchange ?? '', {
      routingKey: this.routingKey,
      ...(this.bindingArguments === undefined ? {} : { arguments: this.bindingArguments }),
      ...options,
    });
  }

  /**
   * Binds the queue to `exchange`.
   *
   * @example
   * ```ts
   * await queue.bindTo(logs, { routingKey: 'error' });
   * ```
   */
  bindTo(exchange: Exchange | string = '', options: BindToOptions = {}): Promise<void> {
    return applyBinding(this.#ch(), 'queue', this.name, exchange, options, false);
  }

  /**
   * Removes a binding of the queue.
   *
   * @example
   * ```ts
   * await queue.unbindFrom(logs, { routingKey: 'error' });
   * ```
   */
  unbindFrom(exchange: Exchange | string = '', options: BindToOptions = {}): Promise<void> {
    return applyBinding(this.#ch(), 'queue', this.name, exchange, options, true);
  }

  /**
   * basic.get: the next message, or null when the queue is empty.
   *
   * @example
   * ```ts
   * const m = await queue.get({ accept: prepareAcceptContent(['json']) });
   * if (m) { use(m.payload); m.ack(); }
   * ```
   */
  async get(options: QueueGetOptions = {}): Promise<Message | null> {
    const m = await this.#ch().get({ queue: this.name, noAck: options.noAck ?? this.noAck }, options);
    if (m !== null) {
      m.accept = options.accept;
      m.maxBytes = options.maxBytes;
    }
    return m;
  }

  /**
   * Removes every ready message.
   *
   * @returns The number of messages purged.
   * @example
   * ```ts
   * const n = await queue.purge();
   * ```
   */
  purge(options: WaitOptions = {}): Promise<number> {
    return this.#ch().purgeQueue({ queue: this.name }, options);
  }

  /**
   * Deletes the queue.
   *
   * @returns The number of messages deleted with it.
   * @example
   * ```ts
   * await queue.delete({ ifEmpty: true });
   * ```
   */
  delete(options: { ifUnused?: boolean; ifEmpty?: boolean } & WaitOptions = {}): Promise<number> {
    return this.#ch().deleteQueue(
      { queue: this.name, ifUnused: options.ifUnused ?? false, ifEmpty: options.ifEmpty ?? false },
      options,
    );
  }

  /**
   * Starts consuming: `callback` gets each raw {@link Message} (not decoded).
   *
   * @returns The consumer tag.
   * @example
   * ```ts
   * const tag = await queue.consume((m) => { console.log(m.payload); m.ack(); });
   * await queue.cancel(tag);
   * ```
   */
  consume(
    callback: (message: Message) => void,
    options: {
      consumerTag?: string;
      noAck?: boolean;
      exclusive?: boolean;
      accept?: ReadonlySet<string>;
    } & WaitOptions = {},
  ): Promise<string> {
    const accept = options.accept;
    return this.#ch().consume(
      {
        queue: this.name,
        noAck: options.noAck ?? this.noAck,
        exclusive: options.exclusive ?? false,
        ...(options.consumerTag === undefined ? {} : { consumerTag: options.consumerTag }),
        ...(this.consumerArguments === undefined ? {} : { arguments: this.consumerArguments }),
      },
      (m) => {
        m.accept = accept;
        callback(m);
      },
      options,
    );
  }

  /**
   * Cancels a consumer started by {@link consume}.
   *
   * @example
   * ```ts
   * await queue.cancel(tag);
   * ```
   */
  cancel(consumerTag: string): Promise<void> {
    return this.#ch().cancel({ consumerTag });
  }
}

/**
 * A queue whose declaration is never cached by `maybeDeclare` (docs/wire.md §2): Celery's result
 * queue class, declared before every publish and poll.
 *
 * @example
 * ```ts
 * const q = new NoCacheQueue(taskId.replaceAll('-', ''), { exchange: results, routingKey: ..., autoDelete: true });
 * await producer.publish(meta, { routingKey: q.routingKey, declare: [q] });
 * ```
 */
export class NoCacheQueue extends Queue {
  /** Always false. */
  override get canCacheDeclaration(): boolean {
    return false;
  }
}

/** Only the `recover` choice of an options object (exactOptionalPropertyTypes-safe). */
function recoverOf(options: CallOptions): CallOptions {
  return options.recover === undefined ? {} : { recover: options.recover };
}

/** queueArguments plus x-expires / x-message-ttl / x-max-length, as integers (ms as RabbitMQ wants). */
function buildArguments(options: QueueOptions): FieldTable | undefined {
  const extra: FieldTable = {};
  let any = false;
  if (options.expires !== undefined) {
    extra['x-expires'] = Math.trunc(options.expires);
    any = true;
  }
  if (options.messageTtl !== undefined) {
    extra['x-message-ttl'] = Math.trunc(options.messageTtl);
    any = true;
  }
  if (options.maxLength !== undefined) {
    extra['x-max-length'] = Math.trunc(options.maxLength);
    any = true;
  }
  if (!any) return options.queueArguments;
  return { ...(options.queueArguments ?? {}), ...extra };
}
