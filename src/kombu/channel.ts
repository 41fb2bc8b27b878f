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
import { RecoveryRecord } from './recovery-record.js';
import type { Replay } from './recovery-record.js';
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
  /**
   * A server-named queue got a new name from the broker while recovering (RabbitMQ refuses
   * to redeclare an `amq.gen-*` name); consumers and bindings moved to the new name.
   */
  rename: [oldName: string, newName: string];
}

/** A delivery handler: the delivery and the transport channel it arrived on. */
export type DeliveryHandler = (delivery: Delivery, channel: TransportChannel) => void;

interface ConsumerRecord {
  queue: string;
  handler: DeliveryHandler;
  options: ConsumeOptions;
}

/**
 * Per-call recovery choice of a declaration (a kombu option, never sent to the broker).
 *
 * @example
 * ```ts
 * await channel.declareQueue(name, { autoDelete: true }, undefined, { recover: false });
 * ```
 */
export interface RecoverOptions {
  /**
   * Remember the declaration so that it is replayed after a reconnect. A store path that
   * declares a fresh queue before every publish passes false: the queue is declared again
   * with the next publish anyway, and remembering it would only fill the record.
   * @default the channel's `recoverDeclarations`
   */
  recover?: boolean;
}

/**
 * Restores broker state of its own on a reopened transport channel (see
 * {@link Channel.addRecoveryHook}). A rejection that is recoverable (the connection dropped
 * again) restarts the recovery; any other is reported on the connection.
 */
export type RecoveryHook = (ch: TransportChannel) => Promise<void>;

/** Options of {@link Channel}. */
export interface ChannelOptions {
  /** Publisher confirms: publish resolves on the broker's ack. @default false */
  confirm?: boolean;
  /**
   * Most declarations remembered for recovery; the oldest are forgotten first, except those
   * of queues being consumed from (they are what saves results after a reconnect).
   * @default 10000
   */
  recoveryLimit?: number;
  /**
   * Remember declarations for recovery. False for publish-only channels that redeclare
   * before every publish (the result store path): nothing is recorded, nothing replayed.
   * Consumers are re-consumed either way. @default true
   */
  recoverDeclarations?: boolean;
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

  readonly #recordByDefault: boolean;
  /** Declarations replayed after a reconnect, and which queues are consumed from. */
  readonly #record: RecoveryRecord;
  #ready: Promise<TransportChannel> | null = null;
  #generation = -1;
  #closed = false;
  #everOpened = false;
  #qos: [number, number, boolean] | undefined;
  #flowActive = true;
  readonly #consumers = new Map<string, ConsumerRecord>();
  readonly #hooks = new Set<RecoveryHook>();
  /** Per handler, the transport callback of unrecorded consumers (one closure, not one each). */
  readonly #deliverers = new WeakMap<DeliveryHandler, [TransportChannel, (d: Delivery) => void]>();

  /** Not for direct use: channels come from `connection.channel()`. */
  constructor(connection: Connection, options: ChannelOptions = {}) {
    super();
    this.connection = connection;
    this.confirm = options.confirm ?? false;
    this.#recordByDefault = options.recoverDeclarations ?? true;
    this.#record = new RecoveryRecord(options.recoveryLimit ?? 10000);
  }

  /** Number of declarations remembered for recovery (diagnostics, tests). */
  get recoveryRecordSize(): number {
    return this.#record.size;
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

  /**
   * {@link run} for operations that are safe to repeat (declare, bind, consume, qos): when
   * the connection drops under one, it is carried out again once the channel has recovered
   * instead of failing the caller (getMany setting up thousands of consumers during a cut).
   * It fails when reaching the channel fails: the connection gave up, or was closed.
   */
  #idempotent<T>(op: (ch: TransportChannel) => Promise<T>, wait?: WaitOptions): Promise<T> {
    let reached = false;
    return this.run((ch) => {
      reached = true;
      return op(ch);
    }, wait).catch((err: unknown) => {
      if (!reached || this.#closed || !isRecoverable(err) || this.connection.options.autoReconnect === false)
        throw err;
      return this.#idempotent(op, wait);
    });
  }

  /**
   * Runs a declaration (idempotently) and records it for recovery under `key` (none when
   * undefined). A declaration the broker refuses is forgotten again: replayed after every
   * reconnect it would be refused every time, and a connection-level refusal (503 for an
   * unknown exchange type) would take the recovered connection down with it, forever.
   */
  #declare<T>(
    key: string | undefined,
    replay: Replay,
    op: (ch: TransportChannel) => Promise<T>,
    wait: WaitOptions | undefined,
  ): Promise<T> {
    if (key === undefined) return this.#idempotent(op, wait);
    this.#record.remember(key, replay);
    return this.#idempotent(op, wait).catch((err: unknown) => {
      if (err instanceof CeleryAmqpError && !err.recoverable && err.replyCode !== undefined)
        this.#record.forget(key, replay);
      throw err;
    });
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
        const ch = await this.#open(tconn);
        // close() ran while this recovery was under way and saw no channel to close: the
        // one opened here would outlive it, with whatever the hooks consumed on it.
        if (this.#closed) {
          await ch.close().catch(() => undefined);
          throw new ChannelError('Channel closed by client', { code: 'CHANNEL_CLOSED' });
        }
        return ch;
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
      ch = await this.#record.replay(
        ch,
        () => this.#create(tconn),
        (err) => this.connection.reportError(err),
      );
    }
    ch = await this.#reconsume(ch, tconn);
    if (this.#everOpened) {
      for (const hook of [...this.#hooks]) {
        try {
          await hook(ch);
        } catch (err) {
          if (isRecoverable(err)) throw err;
          this.connection.reportError(err);
          if (ch.closed) ch = await this.#create(tconn);
        }
      }
    }
    this.#generation = generation;
    this.#everOpened = true;
    return ch;
  }

  /**
   * Re-consumes every consumer with its tag, pipelined. When one fails (its queue is gone:
   * 404 closes the channel, and with it every consumer already restarted on it), the
   * failures are dropped and reported and the rest restart one by one on a fresh channel.
   */
  async #reconsume(first: TransportChannel, tconn: TransportConnection): Promise<TransportChannel> {
    const start = (ch: TransportChannel, rec: ConsumerRecord): Promise<string> =>
      ch.consume(this.currentName(rec.queue), (d) => this.#deliver(rec.handler, d, ch), rec.options);
    const records = [...this.#consumers];
    const results = await Promise.allSettled(records.map(([, rec]) => start(first, rec)));
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length === 0) return first;
    for (const r of failed) if (isRecoverable(r.reason)) throw r.reason;
    let ch = first.closed ? await this.#create(tconn) : first;
    // Each failure drops one consumer; a failure that closes the channel takes every
    // consumer restarted on it along, so the pass starts over on a fresh one.
    for (let broken = true; broken;) {
      broken = false;
      for (const [i, [tag, rec]] of records.entries()) {
        if (!this.#consumers.has(tag)) continue;
        // Those that succeeded on a channel still open need nothing more.
        if (ch === first && results[i]?.status === 'fulfilled') continue;
        try {
          await start(ch, rec);
        } catch (err) {
          if (isRecoverable(err)) throw err;
          if (this.#consumers.delete(tag)) this.#record.unpin(rec.queue);
          this.connection.reportError(err);
          if (ch.closed) {
            ch = await this.#create(tconn);
            broken = true;
            break;
          }
        }
      }
    }
    return ch;
  }

  async #create(tconn: TransportConnection): Promise<TransportChannel> {
    const ch = await tconn.createChannel({ confirm: this.confirm });
    ch.on('return', (m) => this.emit('return', m));
    ch.on('cancel', (tag) => {
      const rec = this.#consumers.get(tag);
      this.#consumers.delete(tag);
      if (rec !== undefined) this.#record.unpin(rec.queue);
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
    if (this.#consumers.size > 0 || this.#hooks.size > 0)
      this.whenReady().catch((err: unknown) => {
        // A close() of ours during the recovery ends it; that is not a fault to report.
        if (!this.#closed) this.connection.reportError(err);
      });
  }

  /**
   * Runs a consumer's handler. A handler that throws must never unwind into the transport
   * (amqplib would see an uncaught exception, the embedded broker would close the channel):
   * the error goes to the connection's error path instead.
   */
  #deliver(handler: DeliveryHandler, d: Delivery, ch: TransportChannel): void {
    try {
      handler(d, ch);
    } catch (err) {
      this.connection.reportError(err);
    }
  }

  /** True when the declaration may be recorded: per call, else the channel's default. */
  #records(options: RecoverOptions | undefined): boolean {
    return options?.recover ?? this.#recordByDefault;
  }

  /**
   * The name a queue has now: the broker's new name for a server-named queue renamed on
   * recovery, else the name itself.
   *
   * @example
   * ```ts
   * channel.on('rename', (oldName, newName) => channel.currentName(oldName) === newName);
   * ```
   */
  currentName(queue: string): string {
    return this.#record.currentName(queue);
  }

  /** Forgets the recovery record of a queue (deleted, or auto-deleted by its last consumer). */
  forgetQueue(name: string): void {
    this.#record.forgetQueue(name);
  }

  /** A server-named queue was redeclared under a new broker-given name. */
  #renamed(original: string, newName: string): void {
    const previous = this.#record.rename(original, newName);
    if (previous !== undefined) this.emit('rename', previous, newName);
  }

  /** Declares an exchange; remembered for recovery unless passive. */
  declareExchange(
    name: string,
    type: ExchangeType | string,
    options: ExchangeDeclareOptions = {},
    wait?: WaitOptions,
    recover?: RecoverOptions,
  ): Promise<void> {
    const opts = { ...options, nowait: false };
    const key = options.passive !== true && this.#records(recover) ? `e\0${name}` : undefined;
    return this.#declare(
      key,
      (ch) => ch.declareExchange(name, type, opts),
      (ch) => ch.declareExchange(name, type, options),
      wait,
    );
  }

  /** Deletes an exchange and forgets it. */
  deleteExchange(name: string, options: { ifUnused?: boolean; nowait?: boolean } = {}, wait?: WaitOptions) {
    this.#record.forget(`e\0${name}`);
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
    recover?: RecoverOptions,
  ): Promise<void> {
    return this.#declare(
      this.#records(recover) ? `eb\0${destination}\0${source}\0${routingKey}` : undefined,
      (ch) => ch.bindExchange(destination, source, routingKey, args),
      (ch) => ch.bindExchange(destination, source, routingKey, args, options),
      wait,
    );
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
    this.#record.forget(`eb\0${destination}\0${source}\0${routingKey}`);
    return this.run((ch) => ch.unbindExchange(destination, source, routingKey, args, options), wait);
  }

  /**
   * Declares a queue; remembered for recovery unless passive or `recover` is false. A
   * server-named queue (name `''`) is remembered under its broker-given name and, after a
   * reconnect, declared anew with `''` (RabbitMQ refuses `amq.gen-*` names from clients):
   * its bindings and consumers follow it to the new name and 'rename' is emitted.
   */
  declareQueue(
    name: string,
    options: QueueDeclareOptions = {},
    wait?: WaitOptions,
    recover?: RecoverOptions,
  ): Promise<QueueDeclareOk | null> {
    const passive = options.passive === true;
    const record = !passive && this.#records(recover);
    const opts = { ...options, nowait: false };
    // A server-named declare is not repeated: a second one would make a second queue.
    if (name !== '') {
      return this.#declare(
        record ? `q\0${name}` : undefined,
        (ch) => ch.declareQueue(name, opts),
        (ch) => ch.declareQueue(name, options),
        wait,
      );
    }
    const p = this.run((ch) => ch.declareQueue(name, options), wait);
    if (!record) return p;
    return p.then((ok) => {
      if (ok !== null) {
        const given = ok.queue;
        this.#record.remember(`q\0${given}`, (ch) =>
          ch.declareQueue('', opts).then((again) => {
            if (again !== null) this.#renamed(given, again.queue);
          }),
        );
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
    recover?: RecoverOptions,
  ): Promise<void> {
    return this.#declare(
      this.#records(recover) ? `qb\0${queue}\0${exchange}\0${routingKey}` : undefined,
      // A binding whose queue was deleted since is skipped rather than failing with 404.
      (ch) =>
        this.#record.has(`q\0${queue}`)
          ? ch.bindQueue(this.currentName(queue), exchange, routingKey, args)
          : Promise.resolve(),
      (ch) => ch.bindQueue(queue, exchange, routingKey, args, options),
      wait,
    );
  }

  /** Removes a queue binding. */
  unbindQueue(queue: string, exchange: string, routingKey: string, args?: FieldTable, wait?: WaitOptions) {
    this.#record.forget(`qb\0${queue}\0${exchange}\0${routingKey}`);
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
   * Starts a consumer that survives reconnects (re-consumed with the same tag and handler),
   * unless `recover` is `{ recover: false }`: then it is not recorded, ends with its
   * transport channel, and a {@link addRecoveryHook | recovery hook} must bring it back.
   *
   * @returns The consumer tag.
   */
  async consume(
    queue: string,
    handler: DeliveryHandler,
    options: ConsumeOptions = {},
    wait?: WaitOptions,
    recover?: RecoverOptions,
  ): Promise<string> {
    const tag = options.consumerTag ?? newConsumerTag();
    const opts: ConsumeOptions = { ...options, consumerTag: tag };
    if (recover?.recover === false) {
      // Not recorded: nothing is kept per consumer but the transport's own entry.
      await this.#idempotent((ch) => ch.consume(queue, this.#deliverer(handler, ch), opts), wait);
      return tag;
    }
    await this.#idempotent((ch) => ch.consume(queue, (d) => this.#deliver(handler, d, ch), opts), wait);
    this.#consumers.set(tag, { queue, handler, options: opts });
    this.#record.pin(queue);
    return tag;
  }

  #deliverer(handler: DeliveryHandler, ch: TransportChannel): (d: Delivery) => void {
    const known = this.#deliverers.get(handler);
    if (known !== undefined && known[0] === ch) return known[1];
    const fn = (d: Delivery): void => this.#deliver(handler, d, ch);
    this.#deliverers.set(handler, [ch, fn]);
    return fn;
  }

  /**
   * Registers a hook run on every transport channel reopened after a reconnect or a
   * channel error, once the recorded declarations and consumers are back: for callers that
   * restore their own state more cheaply than one record per queue would (getMany over
   * 100,000 queues re-consumes just the ids still pending).
   *
   * @returns A function that removes the hook.
   * @example
   * ```ts
   * const off = channel.addRecoveryHook(async (ch) => { await ch.consume(q, onDelivery); });
   * off();
   * ```
   */
  addRecoveryHook(hook: RecoveryHook): () => void {
    this.#hooks.add(hook);
    return () => {
      this.#hooks.delete(hook);
    };
  }

  /** Cancels a consumer; it is not re-consumed after a reconnect. */
  async cancel(consumerTag: string, wait?: WaitOptions): Promise<void> {
    const rec = this.#consumers.get(consumerTag);
    this.#consumers.delete(consumerTag);
    if (rec !== undefined) this.#record.unpin(rec.queue);
    const ch = this.transportChannel;
    // Without an open channel the broker has already dropped the consumer.
    if (ch === null || ch.closed || rec === undefined) return;
    await withDeadline(ch.cancel(consumerTag), wait);
  }

  /** Sets qos; re-applied on every reopened channel. */
  qos(prefetchSize: number, prefetchCount: number, global = false, wait?: WaitOptions): Promise<void> {
    this.#qos = [prefetchSize, prefetchCount, global];
    return this.#idempotent((ch) => ch.qos(prefetchSize, prefetchCount, global), wait);
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
    this.#record.clear();
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
