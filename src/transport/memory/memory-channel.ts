/**
 * A channel on the embedded broker. Every operation is carried out synchronously when it is
 * called (so call order is broker order) and reported through a promise; deliveries arrive
 * later, from the broker's batched scheduler.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { ChannelError, ConnectionError } from '../../errors.js';
import type {
  ChannelOptions,
  ConsumeOptions,
  Delivery,
  ExchangeDeclareOptions,
  ExchangeType,
  FieldTable,
  MessageProperties,
  PublishOptions,
  QueueDeclareOk,
  QueueDeclareOptions,
  TransportChannel,
  TransportChannelEvents,
} from '../types.js';
import type { MemoryQueue, QueueConsumer, StoredMessage } from './memory-queue.js';
import { PrefetchCounter } from './qos.js';
import type { VirtualHost } from './virtual-host.js';
import { brokerError, randomName } from './virtual-host.js';

/** What a channel needs from its connection. */
export interface ChannelOwner {
  readonly id: number;
  readonly vhost: VirtualHost;
  /** A connection-level error (e.g. 503 COMMAND_INVALID) closes the whole connection. */
  failConnection(error: ConnectionError): void;
  /** The channel closed; forget it. */
  channelClosed(channel: MemoryChannel): void;
  schedule(queue: MemoryQueue): void;
}

interface Unacked {
  readonly queue: MemoryQueue;
  readonly message: StoredMessage;
  /** The consumer it was delivered to; undefined for basic.get (not counted by prefetch). */
  readonly consumer: ChannelConsumer | undefined;
}

/** A consumer registered on a queue by one channel. */
class ChannelConsumer implements QueueConsumer {
  readonly counter: PrefetchCounter;

  constructor(
    readonly channel: MemoryChannel,
    readonly queue: MemoryQueue,
    readonly tag: string,
    readonly noAck: boolean,
    readonly exclusive: boolean,
    readonly onDelivery: (delivery: Delivery) => void,
    prefetch: number,
  ) {
    this.counter = new PrefetchCounter(prefetch);
  }

  get connectionId(): number {
    return this.channel.ownerId;
  }

  canAccept(): boolean {
    return this.channel.canDeliver(this);
  }

  deliver(queue: MemoryQueue, message: StoredMessage): void {
    this.channel.deliver(this, queue, message);
  }

  brokerCancel(): void {
    this.channel.brokerCancelled(this);
  }
}

function copyProperties(properties: MessageProperties): MessageProperties {
  const copy = { ...properties };
  if (properties.headers !== undefined) copy.headers = { ...properties.headers };
  return copy;
}

/**
 * One channel on a {@link MemoryConnection}.
 *
 * @example
 * ```ts
 * const ch = await connection.createChannel();
 * await ch.declareQueue('q');
 * await ch.publish('', 'q', Buffer.from('hi'), {});
 * ```
 */
export class MemoryChannel extends EventEmitter<TransportChannelEvents> implements TransportChannel {
  readonly id: number;
  readonly confirm: boolean;
  private readonly owner: ChannelOwner;
  private isClosed = false;
  private closeError: Error | undefined;
  private nextTag = 1;
  /** Insertion order is delivery-tag order, which `ack(tag, multiple)` relies on. */
  private readonly unacked = new Map<number, Unacked>();
  private readonly consumers = new Map<string, ChannelConsumer>();
  private consumerPrefetch = 0;
  private readonly global = new PrefetchCounter(0);
  private active = true;
  /** RabbitMQ lets '' stand for the queue this channel declared last. */
  private lastQueue = '';

  constructor(owner: ChannelOwner, id: number, options: ChannelOptions = {}) {
    super();
    this.owner = owner;
    this.id = id;
    this.confirm = options.confirm ?? false;
  }

  /** True once the channel has closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** @internal The owning connection's id (exclusive-queue checks). */
  get ownerId(): number {
    return this.owner.id;
  }

  private get vhost(): VirtualHost {
    return this.owner.vhost;
  }

  // ---- operations -------------------------------------------------------------------------

  declareExchange(
    name: string,
    type: ExchangeType | string,
    options: ExchangeDeclareOptions = {},
  ): Promise<void> {
    return this.op(options.nowait, undefined, () =>
      this.vhost.declareExchange(name, type, {
        durable: options.durable ?? true,
        autoDelete: options.autoDelete ?? false,
        internal: options.internal ?? false,
        arguments: options.arguments ?? {},
        passive: options.passive ?? false,
      }),
    );
  }

  deleteExchange(name: string, options: { ifUnused?: boolean; nowait?: boolean } = {}): Promise<void> {
    return this.op(options.nowait, undefined, () =>
      this.vhost.deleteExchange(name, options.ifUnused ?? false),
    );
  }

  bindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args: FieldTable = {},
    options: { nowait?: boolean } = {},
  ): Promise<void> {
    return this.op(options.nowait, undefined, () =>
      this.vhost.bind('exchange', destination, source, routingKey, args, this.owner.id),
    );
  }

  unbindExchange(
    destination: string,
    source: string,
    routingKey: string,
    args: FieldTable = {},
    options: { nowait?: boolean } = {},
  ): Promise<void> {
    return this.op(options.nowait, undefined, () =>
      this.vhost.unbind('exchange', destination, source, routingKey, args, this.owner.id),
    );
  }

  declareQueue(name: string, options: QueueDeclareOptions = {}): Promise<QueueDeclareOk | null> {
    return this.op<QueueDeclareOk | null>(options.nowait, null, () => {
      const ok = this.vhost.declareQueue(
        name,
        {
          durable: options.durable ?? false,
          exclusive: options.exclusive ?? false,
          autoDelete: options.autoDelete ?? false,
          arguments: options.arguments ?? {},
          passive: options.passive ?? false,
        },
        this.owner.id,
      );
      this.lastQueue = ok.queue;
      return ok;
    });
  }

  bindQueue(
    queue: string,
    exchange: string,
    routingKey: string,
    args: FieldTable = {},
    options: { nowait?: boolean } = {},
  ): Promise<void> {
    return this.op(options.nowait, undefined, () =>
      this.vhost.bind('queue', this.queueName(queue), exchange, routingKey, args, this.owner.id),
    );
  }

  unbindQueue(queue: string, exchange: string, routingKey: string, args: FieldTable = {}): Promise<void> {
    return this.op(false, undefined, () =>
      this.vhost.unbind('queue', this.queueName(queue), exchange, routingKey, args, this.owner.id),
    );
  }

  purgeQueue(queue: string): Promise<number> {
    return this.op(false, 0, () => this.vhost.queue(this.queueName(queue), this.owner.id).purge());
  }

  deleteQueue(queue: string, options: { ifUnused?: boolean; ifEmpty?: boolean } = {}): Promise<number> {
    return this.op(false, 0, () =>
      this.vhost.deleteQueue(
        this.queueName(queue),
        options.ifUnused ?? false,
        options.ifEmpty ?? false,
        this.owner.id,
      ),
    );
  }

  publish(
    exchange: string,
    routingKey: string,
    body: Buffer,
    properties: MessageProperties,
    options: PublishOptions = {},
  ): Promise<void> {
    if (this.isClosed) return Promise.reject(this.closedError());
    let queues: Set<MemoryQueue>;
    try {
      queues = this.vhost.route(exchange, routingKey, properties.headers);
    } catch (error) {
      // As on RabbitMQ: the publish itself went out; the channel closes afterwards.
      this.fail(error);
      return this.confirm ? Promise.reject(error as Error) : Promise.resolve();
    }
    if (queues.size === 0) {
      if (options.mandatory === true) {
        const returned = {
          body: Buffer.from(body),
          properties: copyProperties(properties),
          replyCode: 312,
          replyText: 'NO_ROUTE',
          exchange,
          routingKey,
        };
        queueMicrotask(() => {
          if (!this.isClosed) this.emit('return', returned);
        });
      }
      return Promise.resolve();
    }
    // One private copy: the publisher may reuse its buffer as soon as publish returns.
    const stored = Buffer.from(body);
    const props = copyProperties(properties);
    const now = Date.now();
    for (const q of queues) q.enqueue(stored, props, exchange, routingKey, now);
    return Promise.resolve();
  }

  get(queue: string, options: { noAck?: boolean } = {}): Promise<Delivery | null> {
    return this.op<Delivery | null>(false, null, () => {
      const q = this.vhost.queue(this.queueName(queue), this.owner.id);
      const message = q.take();
      if (message === undefined) return null;
      const deliveryTag = this.nextTag++;
      if (options.noAck !== true) this.unacked.set(deliveryTag, { queue: q, message, consumer: undefined });
      return {
        body: Buffer.from(message.body),
        properties: copyProperties(message.properties),
        fields: {
          deliveryTag,
          redelivered: message.redelivered,
          exchange: message.exchange,
          routingKey: message.routingKey,
          messageCount: q.messageCount,
        },
      };
    });
  }

  consume(
    queue: string,
    onDelivery: (delivery: Delivery) => void,
    options: ConsumeOptions = {},
  ): Promise<string> {
    return this.op(false, '', () => {
      const name = this.queueName(queue);
      const q = this.vhost.queue(name, this.owner.id);
      if (q.exclusiveConsumer !== undefined || (options.exclusive === true && q.consumerCount > 0)) {
        throw brokerError('ACCESS_REFUSED', `queue '${name}' in vhost '${this.vhost.name}' in exclusive use`);
      }
      const tag = options.consumerTag ?? `amq.ctag-${randomName()}`;
      if (this.consumers.has(tag)) throw brokerError('NOT_ALLOWED', `attempt to reuse consumer tag '${tag}'`);
      const consumer = new ChannelConsumer(
        this,
        q,
        tag,
        options.noAck ?? false,
        options.exclusive ?? false,
        onDelivery,
        this.consumerPrefetch,
      );
      this.consumers.set(tag, consumer);
      q.addConsumer(consumer);
      return tag;
    });
  }

  cancel(consumerTag: string): Promise<void> {
    return this.op(false, undefined, () => {
      const consumer = this.consumers.get(consumerTag);
      if (consumer === undefined) return;
      this.consumers.delete(consumerTag);
      consumer.queue.removeConsumer(consumerTag);
    });
  }

  ack(deliveryTag: number, multiple = false): void {
    if (this.isClosed) return;
    if (multiple) {
      const done: Unacked[] = [];
      for (const [tag, entry] of this.unacked) {
        if (deliveryTag !== 0 && tag > deliveryTag) break;
        this.unacked.delete(tag);
        done.push(entry);
      }
      for (const entry of done) this.settled(entry);
      return;
    }
    const entry = this.unacked.get(deliveryTag);
    if (entry === undefined) {
      this.fail(brokerError('PRECONDITION_FAILED', `unknown delivery tag ${deliveryTag}`));
      return;
    }
    this.unacked.delete(deliveryTag);
    this.settled(entry);
  }

  reject(deliveryTag: number, requeue: boolean): void {
    if (this.isClosed) return;
    const entry = this.unacked.get(deliveryTag);
    if (entry === undefined) {
      this.fail(brokerError('PRECONDITION_FAILED', `unknown delivery tag ${deliveryTag}`));
      return;
    }
    this.unacked.delete(deliveryTag);
    if (requeue) entry.queue.requeue([entry.message]);
    else this.vhost.deadLetter(entry.queue, entry.message, 'rejected');
    this.settled(entry);
  }

  qos(_prefetchSize: number, prefetchCount: number, global = false): Promise<void> {
    return this.op(false, undefined, () => {
      if (global) this.global.limit = prefetchCount;
      else this.consumerPrefetch = prefetchCount;
      this.scheduleAll();
    });
  }

  /**
   * basic.recover. Unacked messages go back to their queues marked redelivered; with
   * `requeue=false` the embedded broker requeues as well (RabbitMQ refuses that form).
   */
  recover(_requeue: boolean): Promise<void> {
    return this.op(false, undefined, () => this.requeueAll());
  }

  flow(active: boolean): Promise<void> {
    return this.op(false, undefined, () => {
      this.active = active;
      if (active) this.scheduleAll();
    });
  }

  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.shutdown(undefined, true);
    return Promise.resolve();
  }

  // ---- broker side ------------------------------------------------------------------------

  /** @internal Whether `consumer` may take one more message now. */
  canDeliver(consumer: ChannelConsumer): boolean {
    if (this.isClosed || !this.active) return false;
    return consumer.noAck || (consumer.counter.hasCapacity && this.global.hasCapacity);
  }

  /** @internal Hands a message to a consumer's callback. */
  deliver(consumer: ChannelConsumer, queue: MemoryQueue, message: StoredMessage): void {
    const deliveryTag = this.nextTag++;
    if (!consumer.noAck) {
      this.unacked.set(deliveryTag, { queue, message, consumer });
      consumer.counter.take();
      this.global.take();
    }
    const delivery: Delivery = {
      // Each delivery gets its own bytes: the stored body may be requeued or fanned out.
      body: Buffer.from(message.body),
      properties: copyProperties(message.properties),
      fields: {
        deliveryTag,
        redelivered: message.redelivered,
        exchange: message.exchange,
        routingKey: message.routingKey,
        consumerTag: consumer.tag,
      },
    };
    try {
      consumer.onDelivery(delivery);
    } catch (error) {
      // A throwing callback must not break the broker's scheduler; surface it as a channel
      // failure (its unacked messages are requeued) that the owner sees on 'close'.
      this.fail(
        new ChannelError(`consumer ${consumer.tag} callback threw: ${String(error)}`, { cause: error }),
      );
    }
  }

  /** @internal The queue of `consumer` was deleted: drop it and tell the application. */
  brokerCancelled(consumer: ChannelConsumer): void {
    if (this.consumers.get(consumer.tag) !== consumer) return;
    this.consumers.delete(consumer.tag);
    queueMicrotask(() => {
      if (!this.isClosed) this.emit('cancel', consumer.tag);
    });
  }

  /**
   * @internal Closes the channel: requeues unacked messages (redelivered), cancels
   * consumers, and emits 'close' with `error` (asynchronously unless `sync`).
   */
  shutdown(error: Error | undefined, sync = false): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError = error;
    this.requeueAll();
    for (const consumer of this.consumers.values()) consumer.queue.removeConsumer(consumer.tag);
    this.consumers.clear();
    this.owner.channelClosed(this);
    if (sync) this.emit('close', error);
    else queueMicrotask(() => this.emit('close', error));
  }

  // ---- helpers ----------------------------------------------------------------------------

  /**
   * Runs one synchronous broker operation. A failure closes the channel (or the
   * connection) and rejects; with `nowait` it resolves with `nowaitValue` and the failure
   * surfaces only through 'close', as on the wire.
   */
  private op<T>(nowait: boolean | undefined, nowaitValue: T, fn: () => T): Promise<T> {
    if (this.isClosed) return Promise.reject(this.closedError());
    try {
      const value = fn();
      return Promise.resolve(nowait === true ? nowaitValue : value);
    } catch (error) {
      this.fail(error);
      return nowait === true ? Promise.resolve(nowaitValue) : Promise.reject(error as Error);
    }
  }

  private fail(error: unknown): void {
    if (error instanceof ConnectionError) this.owner.failConnection(error);
    else this.shutdown(error instanceof Error ? error : new ChannelError(String(error)));
  }

  private closedError(): Error {
    return this.closeError ?? new ChannelError(`channel ${this.id} is closed`, { code: 'CHANNEL_CLOSED' });
  }

  private queueName(queue: string): string {
    if (queue !== '') return queue;
    if (this.lastQueue === '') throw brokerError('NOT_FOUND', 'no previously declared queue');
    return this.lastQueue;
  }

  /** Releases prefetch room after an ack/reject and lets the affected queues deliver again. */
  private settled(entry: Unacked): void {
    if (entry.consumer === undefined) return;
    const globalWasFull = this.global.full;
    entry.consumer.counter.release();
    this.global.release();
    if (globalWasFull) this.scheduleAll();
    else if (!entry.queue.deleted) this.owner.schedule(entry.queue);
  }

  private requeueAll(): void {
    const byQueue = new Map<MemoryQueue, StoredMessage[]>();
    for (const entry of this.unacked.values()) {
      let list = byQueue.get(entry.queue);
      if (list === undefined) byQueue.set(entry.queue, (list = []));
      list.push(entry.message);
      entry.consumer?.counter.release();
      if (entry.consumer !== undefined) this.global.release();
    }
    this.unacked.clear();
    for (const [queue, messages] of byQueue) queue.requeue(messages);
    this.scheduleAll();
  }

  private scheduleAll(): void {
    for (const consumer of this.consumers.values()) {
      if (!consumer.queue.deleted) this.owner.schedule(consumer.queue);
    }
  }
}
