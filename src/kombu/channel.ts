/**
 * The kombu Channel: a recovering wrapper around one {@link TransportChannel}.
 *
 * The transport channel underneath is replaced when it dies: after a channel error (e.g. a
 * 406 on an inequivalent declare) the next operation opens a fresh one; after a reconnect
 * the Connection asks every channel to recover, which reopens it, re-applies qos and flow,
 * redeclares every entity declared through it (in declaration order) and re-consumes every
 * active consumer with the same tag and callback.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ChannelError, CeleryAmqpError } from '../errors.js';
import type {
  ConsumeOptions,
  Delivery,
  ExchangeDeclareOptions,
  ExchangeType,
  FieldTable,
  MessageProperties,
  PublishOptions,
  QueueDeclareOk,
  QueueDeclareOptions,
  ReturnedMessage,
  TransportChannel,
  TransportConnection,
} from '../transport/types.js';
import type { Connection } from './connection.js';
import { Message } from './message.js';
import type { MessageOptions } from './message.js';
import { isRecoverable, withDeadline } from './retry.js';
import type { WaitOptions } from './retry.js';

/** Events of a kombu {@link Channel}. */
export interface ChannelEvents {
  /** An unroutable mandatory message came back. */
  return: [message: ReturnedMessage];
  /** The broker cancelled a consumer (its queue was deleted). */
  cancel: [consumerTag: string];
  /** The channel was closed by {@link Channel.close}. */
  close: [];
}

/** A delivery handler: the delivery and the transport channel it arrived on. */
export type DeliveryHandler = (delivery: Delivery, channel: TransportChannel) => void;

interface ConsumerRecord {
  queue: string;
  handler: DeliveryHandler;
  options: ConsumeOptions;
}

type Replay = (ch: TransportChannel) => Promise<unknown>;

/** Options of {@link Channel}. */
export interface ChannelOptions {
  /** Publisher confirms: publish resolves on the broker's ack. @default false */
  confirm?: boolean;
  /** Most declarations remembered for recovery; the oldest are forgotten first. @default 10000 */
  recoveryLimit?: number;
}

let consumerCounter = 0;
const TAG_NONCE = randomBytes(4).toString('hex');

/**
 * A new consumer tag, unique in this process: `<prefix><nonce>.<n>`.
 *
 * @example
 * ```ts
 * newConsumerTag('celery.'); // 'celery.1a2b3c4d.1'
 * ```
 */
export function newConsumerTag(prefix = 'ctag.'): string {
  consumerCounter += 1;
  return `${prefix}${TAG_NONCE}.${consumerCounter}`;
}

/**
 * A channel that survives channel errors and reconnects. Obtain one from
 * `connection.channel()` or `connection.defaultChannel`.
 *
 * Operations issued while the channel is being reopened wait (within their timeout/signal)
 * and then run in call order.
 *
 * @example
 * ```ts
 * const channel = await connection.channel({ confirm: true });
 * await new Exchange('logs', { type: 'fanout' }).bind(channel).declare();
 * ```
 */
export class Channel extends EventEmitter<ChannelEvents> {
  /** The connection this channel belongs to. */
  readonly connection: Connection;
  /** Publisher-confirm mode. @default false */
  readonly confirm: boolean;
  /** The transport channel in use, `null` while (re)opening. */
  transportChannel: TransportChannel | null = null;

  readonly #recoveryLimit: number;
  #ready: Promise<TransportChannel> | null = null;
  #generation = -1;
  #closed = false;
  #everOpened = false;
  #qos: [number, number, boolean] | undefined;
  #flowActive = true;
  readonly #declarations = new Map<string, Replay>();
  readonly #consumers = new Map<string, ConsumerRecord>();

  /** @internal Use `connection.channel()`. */
  constructor(connection: Connection, options: ChannelOptions = {}) {
    super();
    this.connection = connection;
    this.confirm = options.confirm ?? false;
    this.#recoveryLimit = options.recoveryLimit ?? 10000;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Consumer tags currently registered (re-consumed after a reconnect). */
  get consumerTags(): string[] {
    return [...this.#consumers.keys()];
  }

  /**
   * Runs `op` on the current transport channel, or once one is open again. The fast path
   * (channel open) calls `op` synchronously: no await, no allocation.
   *
   * @example
   * ```ts
   * await channel.run((ch) => ch.purgeQueue('q'));
   * ```
   */
  run<T>(op: (ch: TransportChannel) => Promise<T>, wait?: WaitOptions): Promise<T> {
    const ch = this.transportChannel;
    if (ch !== null && !ch.closed) return op(ch);
    return this.#slow(op, wait);
  }

  #slow<T>(op: (ch: TransportChannel) => Promise<T>, wait?: WaitOptions): Promise<T> {
    const ready = this.whenReady();
    if (wait === undefined || (wait.timeout === undefined && wait.signal === undefined))
      return ready.then(op);
    let cancelled: Error | undefined;
    // Chained on the shared promise so that waiting operations keep their call order.
    const p = ready.then((ch) => (cancelled === undefined ? op(ch) : Promise.reject(cancelled)));
    return withDeadline(p, wait, (err) => {
      cancelled = err;
    });
  }

  /**
   * Resolves with an open transport channel, (re)opening and recovering one if needed.
   *
   * @example
   * ```ts
   * const ch = await channel.whenReady();
   * ```
   */
  whenReady(): Promise<TransportChannel> {
    const ch = this.transportChannel;
    if (ch !== null && !ch.closed) return Promise.resolve(ch);
    if (this.#ready !== null) return this.#ready;
    const ready = this.#reopen();
    this.#ready = ready;
    ready.then(
      (opened) => {
        if (this.#ready === ready) this.#ready = null;
        this.transportChannel = opened;
      },
      () => {
        if (this.#ready === ready) this.#ready = null;
      },
    );
    return ready;
  }

  /** @internal Called by the Connection after a reconnect: recovers eagerly if ever opened. */
  recover(): Promise<void> | undefined {
    if (this.#closed || !this.#everOpened) return undefined;
    return this.whenReady().then(() => undefined);
  }

  async #reopen(): Promise<TransportChannel> {
    for (;;) {
      if (this.#closed) throw new ChannelError('Channel closed by client', { code: 'CHANNEL_CLOSED' });
      const tconn = await this.connection.whenConnected();
      if (this.#closed) throw new ChannelError('Channel closed by client', { code: 'CHANNEL_CLOSED' });
      try {
        return await this.#open(tconn);
      } catch (err) {
        // The connection died while recovering: wait for the next one and start over.
        if (!isRecoverable(err)) throw err;
      }
    }
  }

  async #open(tconn: TransportConnection): Promise<TransportChannel> {
    const generation = this.connection.generation;
    // A new connection means the broker forgot our non-durable entities: redeclare them.
    // A mere channel error does not, and replaying the failed declaration would fail again.
    const redeclare = this.#everOpened && generation !== this.#generation;
    let ch = await this.#create(tconn);
    if (redeclare) {
      for (const [key, replay] of [...this.#declarations]) {
        try {
          await replay(ch);
        } catch (err) {
          if (isRecoverable(err)) throw err;
          this.#declarations.delete(key);
          this.connection.reportError(err);
          if (ch.closed) ch = await this.#create(tconn);
        }
      }
    }
    for (const [tag, rec] of [...this.#consumers]) {
      const target = ch;
      try {
        await target.consume(rec.queue, (d) => rec.handler(d, target), rec.options);
      } catch (err) {
        if (isRecoverable(err)) throw err;
        this.#consumers.delete(tag);
        this.connection.reportError(err);
        if (ch.closed) ch = await this.#create(tconn);
      }
    }
    this.#generation = generation;
    this.#everOpened = true;
    return ch;
  }

  async #create(tconn: TransportConnection): Promise<TransportChannel> {
    const ch = await tconn.createChannel({ confirm: this.confirm });
    ch.on('return', (m) => this.emit('return', m));
    ch.on('cancel', (tag) => {
      this.#consumers.delete(tag);
      this.emit('cancel', tag);
    });
    ch.on('close', () => this.#onTransportClose(ch));
    if (this.#qos !== undefined) await ch.qos(...this.#qos);
    if (!this.#flowActive) await ch.flow(false);
    return ch;
  }

  #onTransportClose(ch: TransportChannel): void {
    if (ch !== this.transportChannel) return;
    this.transportChannel = null;
    if (this.#closed) return;
    // Consumers must come back without waiting for the next operation. After a lost
    // connection this waits for the reconnect; after a channel error it reopens at once.
    if (this.#consumers.size > 0) this.whenReady().catch((err: unknown) => this.connection.reportError(err));
  }

  /** Remembers a declaration for recovery (most recent last; bounded). */
  #remember(key: string, replay: Replay): void {
    const d = this.#declarations;
    d.delete(key);
    d.set(key, replay);
    if (d.size > this.#recoveryLimit) {
      const oldest = d.keys().next();
      if (oldest.done !== true) d.delete(oldest.value);
    }
  }

  /** Forgets the recovery record of a queue (deleted, or auto-deleted by its last consumer). */
  forgetQueue(name: string): void {
    this.#declarations.delete(`q\0${name}`);
  }

  /** Declares an exchange; remembered for recovery unless passive. */
  declareExchange(
    name: string,
    type: ExchangeType | string,
    options: ExchangeDeclareOptions = {},
    wait?: WaitOptions,
  ): Promise<void> {
    if (options.passive !== true) {
      const opts = { ...options, nowait: false };
      this.#remember(`e\0${name}`, (ch) => ch.declareExchange(name, type, opts));
    }
    return this.run((ch) => ch.declareExchange(name, type, options), wait);
  }

  /** Deletes an exchange and forgets it. */
  deleteExchange(name: string, options: { ifUnused?: boolean; nowait?: boolean } = {}, wait?: WaitOptions) {
    this.#declarations.delete(`e\0${name}`);
    return this.run((ch) => ch.deleteExchange(name, options), wait);
  }

  /** Binds exchange `destination` to `source`; remembered for recovery. */
  bindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args?: FieldTable,
    options: { nowait?: boolean } = {},
    wait?: WaitOptions,
  ): Promise<void> {
    this.#remember(`eb\0${destination}\0${source}\0${routingKey}`, (ch) =>
      ch.bindExchange(destination, source, routingKey, args),
    );
    return this.run((ch) => ch.bindExchange(destination, source, routingKey, args, options), wait);
  }

  /** Removes an exchange-to-exchange binding. */
  unbindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args?: FieldTable,
    options: { nowait?: boolean } = {},
    wait?: WaitOptions,
  ): Promise<void> {
    this.#declarations.delete(`eb\0${destination}\0${source}\0${routingKey}`);
    return this.run((ch) => ch.unbindExchange(destination, source, routingKey, args, options), wait);
  }

  /** Declares a queue; remembered for recovery (by its broker-given name when it had none). */
  declareQueue(
    name: string,
    options: QueueDeclareOptions = {},
    wait?: WaitOptions,
  ): Promise<QueueDeclareOk | null> {
    const passive = options.passive === true;
    const opts = { ...options, nowait: false };
    if (name !== '' && !passive) this.#remember(`q\0${name}`, (ch) => ch.declareQueue(name, opts));
    const p = this.run((ch) => ch.declareQueue(name, options), wait);
    if (name !== '' || passive) return p;
    return p.then((ok) => {
      if (ok !== null) {
        const given = ok.queue;
        // A server-named queue comes back under a new name; kept so that bindings on it replay.
        this.#remember(`q\0${given}`, (ch) => ch.declareQueue(given, opts));
      }
      return ok;
    });
  }

  /** Binds a queue to an exchange; remembered for recovery. */
  bindQueue(
    queue: string,
    exchange: string,
    routingKey: string,
    args?: FieldTable,
    options: { nowait?: boolean } = {},
    wait?: WaitOptions,
  ): Promise<void> {
    this.#remember(`qb\0${queue}\0${exchange}\0${routingKey}`, (ch) =>
      // A binding whose queue was deleted since is skipped rather than failing with 404.
      this.#declarations.has(`q\0${queue}`)
        ? ch.bindQueue(queue, exchange, routingKey, args)
        : Promise.resolve(),
    );
    return this.run((ch) => ch.bindQueue(queue, exchange, routingKey, args, options), wait);
  }

  /** Removes a queue binding. */
  unbindQueue(queue: string, exchange: string, routingKey: string, args?: FieldTable, wait?: WaitOptions) {
    this.#declarations.delete(`qb\0${queue}\0${exchange}\0${routingKey}`);
    return this.run((ch) => ch.unbindQueue(queue, exchange, routingKey, args), wait);
  }

  /** Purges a queue: resolves with the number of messages removed. */
  purgeQueue(queue: string, wait?: WaitOptions): Promise<number> {
    return this.run((ch) => ch.purgeQueue(queue), wait);
  }

  /** Deletes a queue and forgets it: resolves with the number of messages deleted. */
  deleteQueue(queue: string, options: { ifUnused?: boolean; ifEmpty?: boolean } = {}, wait?: WaitOptions) {
    this.forgetQueue(queue);
    return this.run((ch) => ch.deleteQueue(queue, options), wait);
  }

  /** Publishes raw bytes. */
  publish(
    exchange: string,
    routingKey: string,
    body: Buffer,
    properties: MessageProperties,
    options?: PublishOptions,
    wait?: WaitOptions,
  ): Promise<void> {
    const ch = this.transportChannel;
    if (ch !== null && !ch.closed) return ch.publish(exchange, routingKey, body, properties, options);
    return this.#slow((c) => c.publish(exchange, routingKey, body, properties, options), wait);
  }

  /** basic.get as a {@link Message}, or null when the queue is empty. */
  get(
    queue: string,
    options: { noAck?: boolean } = {},
    messageOptions: MessageOptions = {},
    wait?: WaitOptions,
  ): Promise<Message | null> {
    return this.run(
      (ch) =>
        ch
          .get(queue, options)
          .then((d) =>
            d === null ? null : new Message(d, ch, { ...messageOptions, noAck: options.noAck ?? false }),
          ),
      wait,
    );
  }

  /**
   * Starts a consumer that survives reconnects (re-consumed with the same tag and handler).
   *
   * @returns The consumer tag.
   */
  async consume(
    queue: string,
    handler: DeliveryHandler,
    options: ConsumeOptions = {},
    wait?: WaitOptions,
  ): Promise<string> {
    const tag = options.consumerTag ?? newConsumerTag();
    const opts: ConsumeOptions = { ...options, consumerTag: tag };
    await this.run((ch) => ch.consume(queue, (d) => handler(d, ch), opts), wait);
    this.#consumers.set(tag, { queue, handler, options: opts });
    return tag;
  }

  /** Cancels a consumer; it is not re-consumed after a reconnect. */
  async cancel(consumerTag: string, wait?: WaitOptions): Promise<void> {
    const rec = this.#consumers.get(consumerTag);
    this.#consumers.delete(consumerTag);
    const ch = this.transportChannel;
    // Without an open channel the broker has already dropped the consumer.
    if (ch === null || ch.closed || rec === undefined) return;
    await withDeadline(ch.cancel(consumerTag), wait);
  }

  /** Sets qos; re-applied on every reopened channel. */
  qos(prefetchSize: number, prefetchCount: number, global = false, wait?: WaitOptions): Promise<void> {
    this.#qos = [prefetchSize, prefetchCount, global];
    return this.run((ch) => ch.qos(prefetchSize, prefetchCount, global), wait);
  }

  /** basic.recover: redeliver unacked messages. */
  recoverUnacked(requeue: boolean, wait?: WaitOptions): Promise<void> {
    return this.run((ch) => ch.recover(requeue), wait);
  }

  /** channel.flow; the state is re-applied on reopened channels. */
  flow(active: boolean, wait?: WaitOptions): Promise<void> {
    this.#flowActive = active;
    return this.run((ch) => ch.flow(active), wait);
  }

  /**
   * Closes the channel for good (idempotent). Consumers are dropped with it.
   *
   * @example
   * ```ts
   * await channel.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#consumers.clear();
    this.#declarations.clear();
    this.connection.forgetChannel(this);
    const ch = this.transportChannel;
    this.transportChannel = null;
    if (ch !== null && !ch.closed) {
      await ch.close().catch((err: unknown) => {
        // Closing an already dead channel is not worth reporting.
        if (!(err instanceof CeleryAmqpError)) throw err;
      });
    }
    this.emit('close');
  }
}
