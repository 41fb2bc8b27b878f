/**
 * A channel on the embedded broker. Every operation is carried out synchronously when it is
 * called (so call order is broker order) and reported through a promise; deliveries arrive
 * later, from the broker's batched scheduler.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { ChannelError, ConnectionError } from '../../errors.js';
// The transport types: one parameter object per AMQP method (AMQP.QueueBindParams, ...).
import type * as AMQP from '../types.js';
import type { MemoryQueue, QueueConsumer, StoredMessage } from './memory-queue.js';
import { fieldText } from './dead-letter.js';
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
    readonly onDelivery: (delivery: AMQP.Delivery) => void,
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

function copyProperties(properties: AMQP.MessageProperties): AMQP.MessageProperties {
  const copy = { ...properties };
  if (properties.headers !== undefined) copy.headers = { ...properties.headers };
  return copy;
}

/** A delivery of a stored message, with its own bytes (the stored body may be requeued or fanned out). */
function deliveryOf(message: StoredMessage, deliveryTag: number): AMQP.Delivery {
  return {
    body: Buffer.from(message.body),
    properties: copyProperties(message.properties),
    fields: {
      deliveryTag,
      redelivered: message.redelivered,
      exchange: message.exchange,
      routingKey: message.routingKey,
    },
  };
}

/**
 * One channel on a {@link MemoryConnection}.
 *
 * @example
 * ```ts
 * const ch = await connection.createChannel();
 * await ch.declareQueue({ queue: 'q' });
 * await ch.publish({ exchange: '', routingKey: 'q', body: Buffer.from('hi') });
 * ```
 */
export class MemoryChannel
  extends EventEmitter<AMQP.TransportChannelEvents>
  implements AMQP.TransportChannel
{
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

  constructor(owner: ChannelOwner, id: number, options: AMQP.TransportChannelOptions = {}) {
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

  declareExchange(params: AMQP.ExchangeDeclareParams): Promise<void> {
    return this.op(params.nowait, undefined, () => this.vhost.declareExchange(params));
  }

  deleteExchange(params: AMQP.ExchangeDeleteParams): Promise<void> {
    return this.op(params.nowait, undefined, () => this.vhost.deleteExchange(params));
  }

  bindExchange(params: AMQP.ExchangeBindParams): Promise<void> {
    return this.op(params.nowait, undefined, () => this.vhost.bind(params, this.owner.id));
  }

  unbindExchange(params: AMQP.ExchangeUnbindParams): Promise<void> {
    return this.op(params.nowait, undefined, () => this.vhost.unbind(params, this.owner.id));
  }

  declareQueue(params: AMQP.QueueDeclareParams): Promise<AMQP.QueueDeclareOk | null> {
    return this.op<AMQP.QueueDeclareOk | null>(params.nowait, null, () => {
      const ok = this.vhost.declareQueue(params, this.owner.id);
      this.lastQueue = ok.queue;
      return ok;
    });
  }

  bindQueue(params: AMQP.QueueBindParams): Promise<void> {
    return this.op(params.nowait, undefined, () => this.vhost.bind(this.onQueue(params), this.owner.id));
  }

  unbindQueue(params: AMQP.QueueUnbindParams): Promise<void> {
    return this.op(false, undefined, () => this.vhost.unbind(this.onQueue(params), this.owner.id));
  }

  purgeQueue(params: AMQP.QueuePurgeParams): Promise<number> {
    return this.op(false, 0, () => this.vhost.queue(this.queueName(params.queue), this.owner.id).purge());
  }

  deleteQueue(params: AMQP.QueueDeleteParams): Promise<number> {
    return this.op(false, 0, () => this.vhost.deleteQueue(this.onQueue(params), this.owner.id));
  }

  publish(params: AMQP.BasicPublishParams): Promise<void> {
    if (this.isClosed) return Promise.reject(this.closedError());
    const { exchange, routingKey, body } = params;
    const properties = params.properties ?? {};
    let queues: Set<MemoryQueue>;
    try {
      queues = this.vhost.route(exchange, routingKey, properties.headers);
    } catch (error) {
      // As on RabbitMQ: the publish itself went out; the channel closes afterwards.
      const failure = this.fail(error);
      return this.confirm ? Promise.reject(failure) : Promise.resolve();
    }
    if (queues.size === 0) {
      if (params.mandatory === true) {
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

  get(params: AMQP.BasicGetParams): Promise<AMQP.Delivery | null> {
    return this.op<AMQP.Delivery | null>(false, null, () => {
      const q = this.vhost.queue(this.queueName(params.queue), this.owner.id);
      const message = q.take();
      if (message === undefined) return null;
      const deliveryTag = this.nextTag++;
      if (params.noAck !== true) this.unacked.set(deliveryTag, { queue: q, message, consumer: undefined });
      const delivery = deliveryOf(message, deliveryTag);
      delivery.fields.messageCount = q.messageCount;
      return delivery;
    });
  }

  consume(params: AMQP.BasicConsumeParams, onDelivery: (delivery: AMQP.Delivery) => void): Promise<string> {
    return this.op(false, '', () => {
      const name = this.queueName(params.queue);
      const q = this.vhost.queue(name, this.owner.id);
      if (this.global.limit > 0 && fieldText(q.arguments['x-queue-type']) === 'quorum') {
        // RabbitMQ closes the connection: quorum queues have no channel-wide prefetch.
        throw brokerError(
          'NOT_IMPLEMENTED',
          `queue '${name}' in vhost '${this.vhost.name}' does not support global qos`,
        );
      }
      if (q.exclusiveConsumer !== undefined || (params.exclusive === true && q.consumerCount > 0)) {
        throw brokerError('ACCESS_REFUSED', `queue '${name}' in vhost '${this.vhost.name}' in exclusive use`);
      }
      const tag = params.consumerTag ?? `amq.ctag-${randomName()}`;
      if (this.consumers.has(tag)) throw brokerError('NOT_ALLOWED', `attempt to reuse consumer tag '${tag}'`);
      const consumer = new ChannelConsumer(
        this,
        q,
        tag,
        params.noAck ?? false,
        params.exclusive ?? false,
        onDelivery,
        this.consumerPrefetch,
      );
      this.consumers.set(tag, consumer);
      q.addConsumer(consumer);
      return tag;
    });
  }

  cancel(params: AMQP.BasicCancelParams): Promise<void> {
    return this.op(false, undefined, () => {
      const consumer = this.consumers.get(params.consumerTag);
      if (consumer === undefined) return;
      this.consumers.delete(params.consumerTag);
      consumer.queue.removeConsumer(params.consumerTag);
    });
  }

  ack(params: AMQP.BasicAckParams): void {
    if (this.isClosed) return;
    const deliveryTag = params.deliveryTag;
    if (params.multiple === true) {
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

  reject(params: AMQP.BasicRejectParams): void {
    if (this.isClosed) return;
    const entry = this.unacked.get(params.deliveryTag);
    if (entry === undefined) {
      this.fail(brokerError('PRECONDITION_FAILED', `unknown delivery tag ${params.deliveryTag}`));
      return;
    }
    this.unacked.delete(params.deliveryTag);
    if (params.requeue) entry.queue.requeue([entry.message]);
    else this.vhost.deadLetter(entry.queue, entry.message, 'rejected');
    this.settled(entry);
  }

  qos(params: AMQP.BasicQosParams): Promise<void> {
    return this.op(false, undefined, () => {
      const prefetchCount = params.prefetchCount ?? 0;
      if (params.global === true) this.global.limit = prefetchCount;
      else this.consumerPrefetch = prefetchCount;
      this.scheduleAll();
    });
  }

  /**
   * basic.recover. Unacked messages go back to their queues marked redelivered; with
   * `requeue=false` the embedded broker requeues as well (RabbitMQ refuses that form).
   */
  recover(_params: AMQP.BasicRecoverParams): Promise<void> {
    return this.op(false, undefined, () => this.requeueAll());
  }

  flow(params: AMQP.ChannelFlowParams): Promise<void> {
    return this.op(false, undefined, () => {
      this.active = params.active;
      if (params.active) this.scheduleAll();
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
    const delivery = deliveryOf(message, deliveryTag);
    delivery.fields.consumerTag = consumer.tag;
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
      const failure = this.fail(error);
      return nowait === true ? Promise.resolve(nowaitValue) : Promise.reject(failure);
    }
  }

  /** Closes the channel (or, for a connection-level error, the connection) with `error`. */
  private fail(error: unknown): Error {
    if (error instanceof ConnectionError) {
      this.owner.failConnection(error);
      return error;
    }
    const failure = error instanceof Error ? error : new ChannelError(String(error));
    this.shutdown(failure);
    return failure;
  }

  private closedError(): Error {
    return this.closeError ?? new ChannelError(`channel ${this.id} is closed`, { code: 'CHANNEL_CLOSED' });
  }

  /** The params with `queue` resolved (RabbitMQ lets '' stand for the last declared queue). */
  private onQueue<P extends { queue: string }>(params: P): P {
    return params.queue === '' ? { ...params, queue: this.queueName('') } : params;
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
