/**
 * The store hot path: a small pool of (confirm) channels on which a result is published as
 * Celery does it (exchange + queue + binding declared, then the publish), with every
 * declaration sent `nowait` so a store costs no round trip besides its confirm.
 *
 * @module
 */
import { CeleryAmqpError, ChannelError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import type { Connection } from '../kombu/connection.js';
import type { Exchange } from '../kombu/exchange.js';
import { Producer } from '../kombu/producer.js';
import type { PublishOptions } from '../kombu/producer.js';
import { NoCacheQueue } from '../kombu/queue.js';
import type { QueueOptions } from '../kombu/queue.js';
import type { DecodeLimits } from '../kombu/decode-limits.js';
import type { Declarable } from '../kombu/types.js';
import type { ExchangeDeclareParams, QueueDeclareParams } from '../transport/types.js';

/** Store-path declarations are never replayed on recovery. */
const NO_RECORD = { recover: false } as const;

/** How the pool declares a result queue. */
export interface StoreQueueSpec {
  /** Durable queue (persistent results). */
  durable: boolean;
  /** Auto-delete queue. */
  autoDelete: boolean;
  /** `x-expires` in ms, or null for none. */
  expires: number | null;
}

/** One publish: everything but the queue name. */
export interface StoreMessage {
  /** The body (serialized by the producer). */
  body: unknown;
  /** Routing key = queue name. */
  routingKey: string;
  /** The correlation_id property. */
  correlationId: string;
  /** Names the body in encode errors (`result of task <id>`). @default undefined */
  label?: string | undefined;
  /** Abort between attempts. */
  signal?: AbortSignal | undefined;
}

/** Options of a {@link StorePool}. */
export interface StorePoolOptions {
  /** The result exchange (unbound). */
  exchange: Exchange;
  /** Queue flags. */
  queue: StoreQueueSpec;
  /** Serializer name. */
  serializer: string;
  /** Compression name or mime, or null. */
  compression: string | null;
  /** delivery_mode: 2 persistent, 1 transient. */
  deliveryMode: 1 | 2;
  /** Publisher confirms. @default true */
  confirm: boolean;
  /** Channels in the pool. @default 16 */
  size: number;
  /** Limits of the results serialized (see `dumps`). @default DEFAULT_DECODE_LIMITS */
  limits?: Partial<DecodeLimits> | undefined;
}

/**
 * A round-robin pool of producers, each on its own channel, plus a "careful lane": one
 * channel used one store at a time with awaited declarations.
 *
 * Why the lane: a nowait declaration that the broker refuses (406, inequivalent flags)
 * closes its channel later, failing every store in flight on it. Those stores are retried
 * on the lane, where nothing else runs concurrently, so a 406 there belongs to that very
 * store and is surfaced; the innocent ones go through.
 *
 * @example
 * ```ts
 * const pool = new StorePool(connection, { exchange, queue, serializer: 'json', compression: null,
 *   deliveryMode: 2, confirm: true, size: 16 });
 * await pool.store({ body, routingKey, correlationId: id });
 * await pool.close();
 * ```
 */
export class StorePool {
  readonly #connection: Connection;
  readonly #options: StorePoolOptions;
  readonly #slots: Array<Producer | undefined>;
  readonly #opening: Array<Promise<Producer> | undefined>;
  #next = 0;
  /** Stores in flight per slot. */
  readonly #inFlight: number[];
  #lane: Promise<Producer> | undefined;
  #laneTail: Promise<unknown> = Promise.resolve();
  readonly #channels = new Set<Channel>();
  #closed = false;
  readonly #queueOptions: QueueOptions;
  /** queue.declare params of the store path (the name set per store), built once (nowait and awaited forms). */
  readonly #declareNowait: QueueDeclareParams;
  readonly #declareWait: QueueDeclareParams;
  /** exchange.declare params of the store path, built once (nowait and awaited forms). */
  readonly #exchangeNowait: ExchangeDeclareParams;
  readonly #exchangeWait: ExchangeDeclareParams;

  constructor(connection: Connection, options: StorePoolOptions) {
    this.#connection = connection;
    this.#options = options;
    this.#slots = new Array<Producer | undefined>(Math.max(1, options.size)).fill(undefined);
    this.#opening = new Array<Promise<Producer> | undefined>(this.#slots.length).fill(undefined);
    this.#inFlight = new Array<number>(this.#slots.length).fill(0);
    const q = options.queue;
    this.#queueOptions = {
      exchange: options.exchange,
      durable: q.durable,
      autoDelete: q.autoDelete,
      exclusive: false,
      ...(q.expires === null ? {} : { expires: q.expires }),
    };
    // Exactly what a NoCacheQueue and the result exchange send (built once, from a template).
    const { exchange: _unused, ...flags } = this.#queueOptions;
    const template = new NoCacheQueue('template', flags);
    this.#declareNowait = template.declareParams({ nowait: true });
    this.#declareWait = template.declareParams();
    this.#exchangeNowait = options.exchange.declareParams({ nowait: true, passive: false });
    this.#exchangeWait = options.exchange.declareParams({ passive: false });
  }

  /** The queue declaration for a routing key, bound to `channel` (or unbound). */
  queueFor(routingKey: string, channel?: Channel): NoCacheQueue {
    return new NoCacheQueue(routingKey, {
      ...this.#queueOptions,
      routingKey,
      ...(channel === undefined ? {} : { channel }),
    });
  }

  /**
   * Publishes one result: the fast (nowait, pipelined) path first, then the careful lane
   * when the channel was closed under it by a channel error.
   *
   * @throws ChannelError (e.g. 406 PRECONDITION_FAILED) when this store's own declaration is refused;
   *   connection errors as they come (the caller retries them per its policy).
   */
  async store(message: StoreMessage): Promise<void> {
    // The slot is chosen before any await: a burst of stores on a cold pool used to pile
    // onto slot 0 while it opened.
    const slot = this.#pick();
    this.#inFlight[slot] = (this.#inFlight[slot] ?? 0) + 1;
    try {
      const producer = this.#slots[slot] ?? (await this.#open(slot));
      await this.#publish(producer, message, true);
    } catch (err) {
      if (!isChannelFailure(err) || this.#closed) throw err;
      await this.#careful(message);
    } finally {
      this.#inFlight[slot] = (this.#inFlight[slot] ?? 1) - 1;
    }
  }

  /**
   * The next idle slot in round-robin order, else the next one: RabbitMQ works through a
   * channel's declares and publishes one after another, so a store queued behind a busy
   * channel waits while an idle one could take it.
   */
  #pick(): number {
    const n = this.#slots.length;
    let slot = this.#next;
    for (let i = 0; i < n; i += 1) {
      const s = (this.#next + i) % n;
      if (this.#inFlight[s] === 0) {
        slot = s;
        break;
      }
    }
    this.#next = (slot + 1) % n;
    return slot;
  }

  #careful(message: StoreMessage): Promise<void> {
    const run = async (): Promise<void> => {
      this.#lane ??= this.#openProducer();
      await this.#publish(await this.#lane, message, false);
    };
    // Serialized: each careful store starts once the previous one has settled.
    const p = this.#laneTail.then(run, run);
    this.#laneTail = p.catch(() => undefined);
    return p;
  }

  #publish(producer: Producer, m: StoreMessage, nowait: boolean): Promise<void> {
    const channel = producer.channel;
    const o = this.#options;
    const options: PublishOptions = {
      routingKey: m.routingKey,
      // Exchange, queue and binding declared every time, as Celery does: the queue may have
      // expired, the exchange may have been deleted (see #binding).
      declare: [this.#binding(m.routingKey, channel)],
      declareNowait: nowait,
      correlationId: m.correlationId,
      deliveryMode: o.deliveryMode,
      priority: 0,
      ...(m.signal === undefined ? {} : { signal: m.signal }),
      ...(m.label === undefined ? {} : { label: m.label }),
    };
    // The declarations are not recorded (see #binding): a result queue need not be
    // redeclared when the channel recovers, the next store redeclares it anyway.
    return producer.publish(m.body, options);
  }

  /**
   * Exchange, queue and binding, declared before every store as Celery's NoCacheQueue does
   * (docs/wire.md §2). The exchange too: an exchange deleted since (by an operator, a
   * vhost cleanup) is recreated by the next store, where a once-per-connection declare
   * failed every store with 404 until a reconnect; an existing exchange costs the broker a
   * lookup. Straight to the channel with option objects built once, and never recorded
   * for recovery (`recover: false`): a store redeclares everything anyway, and the record
   * and the NoCacheQueue it took per store were a fifth of the store path's CPU on memory://.
   */
  #binding(routingKey: string, channel: Channel): Declarable & { channel: Channel } {
    const exchange = this.#options.exchange.name;
    return {
      channel,
      canCacheDeclaration: false,
      cacheKey: routingKey,
      declare: (opts: { nowait?: boolean } = {}) => {
        const queue = routingKey;
        if (opts.nowait === true) {
          return Promise.all([
            this.#declareExchange(channel, this.#exchangeNowait),
            channel.declareQueue({ ...this.#declareNowait, queue }, NO_RECORD),
            channel.bindQueue({ queue, exchange, routingKey, nowait: true }, NO_RECORD),
          ]);
        }
        return this.#declareExchange(channel, this.#exchangeWait)
          .then(() => channel.declareQueue({ ...this.#declareWait, queue }, NO_RECORD))
          .then(() => channel.bindQueue({ queue, exchange, routingKey }, NO_RECORD));
      },
    };
  }

  /** The store path's exchange.declare; none for the default exchange, which cannot be declared. */
  #declareExchange(channel: Channel, params: ExchangeDeclareParams): Promise<void> {
    if (params.exchange === '') return Promise.resolve();
    return channel.declareExchange(params, NO_RECORD);
  }

  #open(slot: number): Promise<Producer> {
    let p = this.#opening[slot];
    if (p === undefined) {
      p = this.#openProducer().then((producer) => {
        this.#slots[slot] = producer;
        return producer;
      });
      this.#opening[slot] = p;
      // A failed open is retried by the next store on that slot.
      p.catch(() => {
        if (this.#opening[slot] === p) this.#opening[slot] = undefined;
      });
    }
    return p;
  }

  async #openProducer(): Promise<Producer> {
    const o = this.#options;
    const channel = await this.#connection.channel({ confirm: o.confirm });
    if (this.#closed) {
      await channel.close();
      throw new CeleryAmqpError('The result backend is closed', 'CONNECTION_CLOSED');
    }
    this.#channels.add(channel);
    return new Producer(channel, {
      exchange: o.exchange,
      // Every store declares the exchange itself (see #binding): the producer's
      // once-per-connection declare would only repeat it.
      autoDeclare: false,
      serializer: o.serializer,
      limits: o.limits,
      ...(o.compression === null ? {} : { compression: o.compression }),
    });
  }

  /** Closes every channel of the pool (idempotent). */
  async close(): Promise<void> {
    this.#closed = true;
    const channels = [...this.#channels];
    this.#channels.clear();
    this.#slots.fill(undefined);
    await Promise.allSettled(channels.map((c) => c.close()));
  }
}

/** A broker-side channel close (406, 404, ...), as opposed to a lost connection. */
export function isChannelFailure(err: unknown): boolean {
  return err instanceof ChannelError;
}
