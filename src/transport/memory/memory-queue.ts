/**
 * Queue storage for the embedded broker: ready messages in a deque, consumers served
 * round-robin within their prefetch, message TTL (`x-message-ttl`, per-message
 * `expiration`) and queue expiry (`x-expires`). Expired messages are handed to the
 * virtual host for dead-lettering (see dead-letter.ts).
 *
 * @module
 */
import type { FieldTable, MessageProperties } from '../types.js';
import type { DeadLetterReason } from './dead-letter.js';
import { deadLetterExchangeOf, fieldText } from './dead-letter.js';
import { Deque } from './deque.js';

/** A message as a queue holds it. The body is the broker's own copy. */
export interface StoredMessage {
  readonly body: Buffer;
  readonly properties: MessageProperties;
  readonly exchange: string;
  readonly routingKey: string;
  redelivered: boolean;
  /** Epoch ms after which the message is dead; Infinity when it has no TTL. */
  readonly expiresAt: number;
  /** TTL 0: deliverable only straight away to a waiting consumer, as RabbitMQ does. */
  readonly immediate: boolean;
}

/** What a queue needs from a consumer; the channel implements it. */
export interface QueueConsumer {
  readonly tag: string;
  readonly noAck: boolean;
  readonly exclusive: boolean;
  /** The connection that owns the consumer's channel. */
  readonly connectionId: number;
  /** True when the consumer (and its channel) can take one more message now. */
  canAccept(): boolean;
  /** Hands one message over; the queue has already removed it from its ready list. */
  deliver(queue: MemoryQueue, message: StoredMessage): void;
  /** The queue was deleted under the consumer (basic.cancel from the broker). */
  brokerCancel(queue: MemoryQueue): void;
}

/** Callbacks from a queue to its virtual host. */
export interface QueueHooks {
  /** Ask for a dispatch pass (batched, asynchronous). */
  schedule(queue: MemoryQueue): void;
  /** The queue is unused for `x-expires` ms, or lost its last consumer while auto-delete. */
  remove(queue: MemoryQueue): void;
  /** A message left the queue rejected or expired; dead-letter it if the queue says so. */
  deadLetter(queue: MemoryQueue, message: StoredMessage, reason: DeadLetterReason): void;
}

/** Declared properties of a queue. */
export interface QueueSettings {
  durable: boolean;
  autoDelete: boolean;
  /** Owning connection id for exclusive queues, else undefined. */
  owner: number | undefined;
  arguments: FieldTable;
}

function numberArg(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

/**
 * Parses a per-message `expiration` property (decimal milliseconds) or returns undefined.
 *
 * @example
 * ```ts
 * parseExpiration('5000'); // 5000
 * ```
 */
export function parseExpiration(expiration: string | undefined): number | undefined {
  if (expiration === undefined) return undefined;
  if (!/^\d+$/.test(expiration)) return undefined;
  return Number(expiration);
}

/**
 * One queue.
 *
 * @example
 * ```ts
 * const q = new MemoryQueue('tasks', { durable: true, autoDelete: false, owner: undefined, arguments: {} }, hooks);
 * ```
 */
export class MemoryQueue {
  readonly name: string;
  readonly durable: boolean;
  readonly autoDelete: boolean;
  readonly owner: number | undefined;
  readonly arguments: FieldTable;
  /** `x-message-ttl` in ms, when set. */
  readonly messageTtl: number | undefined;
  /** `x-expires` in ms, when set. */
  readonly expires: number | undefined;
  /** `x-dead-letter-exchange` (`''` is the default exchange), when set. */
  readonly deadLetterExchange: string | undefined;
  /** `x-dead-letter-routing-key`, when set; else a dead letter keeps its routing key. */
  readonly deadLetterRoutingKey: string | undefined;
  /** Set once the queue is deleted: late acks and requeues are then dropped. */
  deleted = false;

  private readonly ready = new Deque<StoredMessage>();
  private readonly consumers: QueueConsumer[] = [];
  /** Round-robin cursor into {@link consumers}. */
  private cursor = 0;
  /** Auto-delete only applies to a queue that has had a consumer. */
  private hadConsumer = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  /**
   * Fires when the head message's TTL runs out, on dead-lettering queues only: RabbitMQ
   * expires messages at the head without being asked, and a TTL queue with a dead-letter
   * exchange and no consumer (the usual delayed-retry setup) relies on that.
   */
  private ttlTimer: NodeJS.Timeout | undefined;
  private readonly hooks: QueueHooks;

  constructor(name: string, settings: QueueSettings, hooks: QueueHooks) {
    this.name = name;
    this.durable = settings.durable;
    this.autoDelete = settings.autoDelete;
    this.owner = settings.owner;
    this.arguments = settings.arguments;
    this.messageTtl = numberArg(settings.arguments['x-message-ttl']);
    this.expires = numberArg(settings.arguments['x-expires']);
    this.deadLetterExchange = deadLetterExchangeOf(settings.arguments);
    this.deadLetterRoutingKey = fieldText(settings.arguments['x-dead-letter-routing-key']);
    this.hooks = hooks;
    this.touch();
  }

  /** True for an exclusive queue. */
  get exclusive(): boolean {
    return this.owner !== undefined;
  }

  /** Ready messages (not counting unacked ones), after dropping expired ones at the head. */
  get messageCount(): number {
    this.dropExpired(Date.now());
    return this.ready.length;
  }

  /** Number of consumers. */
  get consumerCount(): number {
    return this.consumers.length;
  }

  /** The exclusive consumer's tag, if one holds the queue. */
  get exclusiveConsumer(): QueueConsumer | undefined {
    const first = this.consumers[0];
    return first !== undefined && first.exclusive ? first : undefined;
  }

  /**
   * Enqueues a routed message. Returns false when the message died at once (TTL 0 and no
   * consumer ready to take it).
   */
  enqueue(
    body: Buffer,
    properties: MessageProperties,
    exchange: string,
    routingKey: string,
    now: number,
  ): boolean {
    const perMessage = parseExpiration(properties.expiration);
    let ttl = this.messageTtl;
    if (perMessage !== undefined) ttl = ttl === undefined ? perMessage : Math.min(ttl, perMessage);
    const immediate = ttl === 0;
    const message: StoredMessage = {
      body,
      properties,
      exchange,
      routingKey,
      redelivered: false,
      expiresAt: ttl === undefined ? Infinity : now + ttl,
      immediate,
    };
    if (immediate && !this.consumers.some((c) => c.canAccept())) {
      this.hooks.deadLetter(this, message, 'expired');
      return false;
    }
    this.ready.push(message);
    if (this.consumers.length > 0) this.hooks.schedule(this);
    if (this.ttlTimer === undefined) this.armTtl();
    return true;
  }

  /** Puts messages back at the head in their original order, marked redelivered. */
  requeue(messages: readonly StoredMessage[]): void {
    if (this.deleted || messages.length === 0) return;
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i]!;
      m.redelivered = true;
      this.ready.unshift(m);
    }
    if (this.consumers.length > 0) this.hooks.schedule(this);
    // The new head may expire before the one the timer was set for.
    this.armTtl();
  }

  /** basic.get: the next live message, or undefined. Renews the `x-expires` lease. */
  take(): StoredMessage | undefined {
    this.touch();
    this.dropExpired(Date.now());
    const m = this.ready.shift();
    return m;
  }

  /** Removes every ready message; returns how many. */
  purge(): number {
    const n = this.messageCount;
    this.ready.clear();
    return n;
  }

  /** Adds a consumer and renews the lease (a consumed queue never expires). */
  addConsumer(consumer: QueueConsumer): void {
    this.consumers.push(consumer);
    this.hadConsumer = true;
    this.clearExpiry();
    this.hooks.schedule(this);
  }

  /**
   * Removes a consumer. An auto-delete queue that loses its last consumer is deleted, and
   * an `x-expires` lease starts again.
   */
  removeConsumer(tag: string): boolean {
    const index = this.consumers.findIndex((c) => c.tag === tag);
    if (index < 0) return false;
    this.consumers.splice(index, 1);
    if (this.cursor > index) this.cursor--;
    if (this.consumers.length === 0) {
      if (this.autoDelete && this.hadConsumer) this.hooks.remove(this);
      else this.touch();
    }
    return true;
  }

  /** The consumers (for cancel notifications when the queue is deleted). */
  allConsumers(): readonly QueueConsumer[] {
    return this.consumers;
  }

  /**
   * Delivers ready messages to consumers with room, round-robin, up to `budget`
   * deliveries. Returns how many were delivered.
   */
  drain(budget: number): number {
    let delivered = 0;
    const now = Date.now();
    while (delivered < budget && !this.deleted && this.ready.length > 0 && this.consumers.length > 0) {
      this.dropExpired(now);
      if (this.ready.length === 0) break;
      const consumer = this.nextConsumer();
      if (consumer === undefined) break;
      const message = this.ready.shift()!;
      consumer.deliver(this, message);
      delivered++;
    }
    // A TTL-0 message that found no taker in this pass dies, as on RabbitMQ.
    while (this.ready.peek()?.immediate === true && this.nextConsumerIndex() < 0) {
      this.hooks.deadLetter(this, this.ready.shift()!, 'expired');
    }
    return delivered;
  }

  /**
   * Renews the `x-expires` lease: restarts the timer when the queue has no consumer.
   * RabbitMQ renews it on declare (including passive), basic.get and consumer changes.
   */
  touch(): void {
    if (this.expires === undefined || this.deleted) return;
    if (this.consumers.length > 0) {
      this.clearExpiry();
      return;
    }
    if (this.expiryTimer !== undefined) {
      // Cheaper than a new timer: the worker redeclares a result queue on every publish.
      this.expiryTimer.refresh();
      return;
    }
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      if (!this.deleted && this.consumers.length === 0) this.hooks.remove(this);
    }, this.expires);
    // An idle result queue must never keep the process alive.
    this.expiryTimer.unref();
  }

  /** Marks the queue deleted, drops its messages and stops its timer. Returns the message count. */
  destroy(): number {
    const n = this.messageCount;
    this.deleted = true;
    this.clearExpiry();
    this.clearTtl();
    this.ready.clear();
    this.consumers.length = 0;
    return n;
  }

  private clearExpiry(): void {
    if (this.expiryTimer !== undefined) {
      clearTimeout(this.expiryTimer);
      this.expiryTimer = undefined;
    }
  }

  private clearTtl(): void {
    if (this.ttlTimer !== undefined) {
      clearTimeout(this.ttlTimer);
      this.ttlTimer = undefined;
    }
  }

  /** Sets {@link ttlTimer} for the head message (dead-lettering queues only). */
  private armTtl(): void {
    this.clearTtl();
    if (this.deadLetterExchange === undefined || this.deleted) return;
    const head = this.ready.peek();
    if (head === undefined || head.immediate || head.expiresAt === Infinity) return;
    this.ttlTimer = setTimeout(
      () => {
        this.ttlTimer = undefined;
        if (!this.deleted) this.dropExpired(Date.now());
      },
      // setTimeout fires at once past 2^31 - 1 ms (e.g. the 2^27 s delay level): wait in steps.
      Math.min(Math.max(0, head.expiresAt - Date.now()) + 1, 0x7fffffff),
    );
    // A pending expiry must not keep the process alive any more than an idle queue does.
    this.ttlTimer.unref();
  }

  private dropExpired(now: number): void {
    let dropped = false;
    for (let head = this.ready.peek(); head !== undefined; head = this.ready.peek()) {
      if (head.immediate ? this.consumers.length > 0 : head.expiresAt > now) break;
      this.hooks.deadLetter(this, this.ready.shift()!, 'expired');
      dropped = true;
    }
    if (dropped || this.ttlTimer === undefined) this.armTtl();
  }

  private nextConsumerIndex(): number {
    const n = this.consumers.length;
    for (let i = 0; i < n; i++) {
      const index = (this.cursor + i) % n;
      if (this.consumers[index]!.canAccept()) return index;
    }
    return -1;
  }

  private nextConsumer(): QueueConsumer | undefined {
    const index = this.nextConsumerIndex();
    if (index < 0) return undefined;
    this.cursor = (index + 1) % this.consumers.length;
    return this.consumers[index];
  }
}
