/**
 * The Consumer (kombu's `messaging.Consumer`): consumes from several queues, decodes lazily
 * and dispatches to callbacks, or yields messages through async iteration.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { CallbackError, CeleryAmqpError, TimeoutError } from '../errors.js';
import type { Channel } from './channel.js';
import { newConsumerTag } from './channel-consumers.js';
import { toChannel } from './entity.js';
import type { ChannelLike } from './entity.js';
import { onAbort } from './abort-listener.js';
import type { Message } from './message.js';
import { Queue } from './queue.js';
import { abortError } from './retry.js';
import type { WaitOptions } from './retry.js';
import { prepareAcceptContent } from './serialization.js';

/** A consumer callback: the decoded body and the message. */
export type ConsumerCallback = (body: unknown, message: Message) => void;

/**
 * Events of a {@link Consumer}.
 *
 * @example
 * ```ts
 * consumer.on('error', (err, message) => { log.error(err); message?.reject(); });
 * ```
 */
export interface ConsumerEvents {
  /**
   * A callback threw (a `CallbackError`, the original as `cause`), or a message could not be
   * decoded and there is no onDecodeError (a `DecodeError`). The message is left unacked.
   * Without a listener the error goes to the connection's error path ('error' event, else
   * its logger).
   */
  error: [error: CeleryAmqpError, message?: Message];
}

/** Options of a {@link Consumer}. */
export interface ConsumerOptions {
  /** Queues to consume from. @default [] */
  queues?: Array<Queue | string>;
  /** Consume without acknowledgements. @default false */
  noAck?: boolean;
  /** Declare the queues (and their exchanges and bindings) before consuming. @default true */
  autoDeclare?: boolean;
  /** Callbacks `(body, message)`. @default [] */
  callbacks?: ConsumerCallback[];
  /** Gets the raw Message instead of the callbacks (no decoding). @default undefined */
  onMessage?: (message: Message) => void;
  /** Gets undecodable messages (the message is left for it to settle). @default undefined */
  onDecodeError?: (message: Message, error: Error) => void;
  /** Accepted serializer names or mime types. @default undefined (all but pickle) */
  accept?: Iterable<string>;
  /** Decoded size limit in bytes. @default undefined */
  maxBytes?: number;
  /** basic.qos prefetch count set before consuming. @default undefined (none) */
  prefetchCount?: number;
  /** Consumer tag prefix. @default 'ctag.' */
  tagPrefix?: string;
}

/**
 * Consumes messages from queues.
 *
 * Decode errors go to `onDecodeError` when set; otherwise they are reported, as are
 * exceptions of the callbacks (Consumer 'error' event when listened to, else the
 * connection's error path: its 'error' event, else its logger), and the message is left
 * unacked — never lost.
 *
 * @example
 * ```ts
 * const consumer = new Consumer(connection, { queues: [queue], accept: ['json'] });
 * consumer.registerCallback((body, message) => { console.log(body); message.ack(); });
 * await consumer.consume();
 * await connection.drainEvents({ timeout: 1000 });
 * await consumer.cancel();
 * ```
 */
export class Consumer extends EventEmitter<ConsumerEvents> {
  /** The channel used. */
  channel: Channel;
  /** The queues, bound to {@link channel}. */
  queues: Queue[];
  /** @default false */
  noAck: boolean;
  /** @default true */
  autoDeclare: boolean;
  /** @default [] */
  callbacks: ConsumerCallback[];
  /** @default undefined */
  onMessage: ((message: Message) => void) | undefined;
  /** @default undefined */
  onDecodeError: ((message: Message, error: Error) => void) | undefined;
  /** Accepted mime types, `undefined` for all but pickle. */
  accept: ReadonlySet<string> | undefined;
  /** @default undefined */
  maxBytes: number | undefined;
  /** @default undefined */
  prefetchCount: number | undefined;
  /** @default 'ctag.' */
  readonly tagPrefix: string;
  /** queue name -> consumer tag. */
  readonly #active = new Map<string, string>();
  #sink: ((message: Message) => void) | undefined;
  readonly #handler = (message: Message): void => this.#receive(message);
  /** Follows a server-named queue the channel redeclared under a new name on recovery. */
  readonly #onRename = (oldName: string, newName: string): void => {
    for (const q of this.queues) if (q.name === oldName) q.name = newName;
    const tag = this.#active.get(oldName);
    if (tag !== undefined) {
      this.#active.delete(oldName);
      this.#active.set(newName, tag);
    }
  };

  constructor(channel: ChannelLike, options: ConsumerOptions = {}) {
    super();
    this.channel = toChannel(channel);
    this.queues = (options.queues ?? []).map((q) =>
      (typeof q === 'string' ? new Queue(q) : q).bind(this.channel),
    );
    this.noAck = options.noAck ?? false;
    this.autoDeclare = options.autoDeclare ?? true;
    this.callbacks = [...(options.callbacks ?? [])];
    this.onMessage = options.onMessage;
    this.onDecodeError = options.onDecodeError;
    this.accept = options.accept === undefined ? undefined : prepareAcceptContent(options.accept);
    this.maxBytes = options.maxBytes;
    this.prefetchCount = options.prefetchCount;
    this.tagPrefix = options.tagPrefix ?? 'ctag.';
    this.channel.on('rename', this.#onRename);
  }

  /** The connection of the channel. */
  get connection(): Channel['connection'] {
    return this.channel.connection;
  }

  /**
   * Adds a queue; {@link consume} must be called again to start consuming from it.
   *
   * @returns The queue bound to this consumer's channel.
   * @example
   * ```ts
   * consumer.addQueue(new Queue('extra'));
   * await consumer.consume();
   * ```
   */
  addQueue(queue: Queue | string): Queue {
    const bound = (typeof queue === 'string' ? new Queue(queue) : queue).bind(this.channel);
    this.queues.push(bound);
    return bound;
  }

  /**
   * Declares the queues with their exchanges and bindings.
   *
   * @example
   * ```ts
   * await consumer.declare();
   * ```
   */
  async declare(options: WaitOptions = {}): Promise<void> {
    for (const q of this.queues) await q.declare(options);
  }

  /**
   * Starts consuming from every queue not consumed yet (declaring them first when
   * autoDeclare). Consumers survive reconnects.
   *
   * @returns The consumer tags started now.
   * @example
   * ```ts
   * await consumer.consume({ noAck: true });
   * ```
   */
  async consume(options: { noAck?: boolean } & WaitOptions = {}): Promise<string[]> {
    const noAck = options.noAck ?? this.noAck;
    const pending = this.queues.filter((q) => !this.#active.has(q.name));
    if (pending.length === 0) return [];
    if (this.prefetchCount !== undefined && !noAck) await this.qos({ prefetchCount: this.prefetchCount });
    if (!this.autoDeclare) {
      // Nothing to declare: the consumes are pipelined (the channel keeps call order), so
      // consuming from thousands of queues costs one round trip, not one per queue.
      return Promise.all(pending.map((q) => this.#consumeOne(q, noAck, options)));
    }
    const tags: string[] = [];
    for (const q of pending) {
      await q.declare(options);
      tags.push(await this.#consumeOne(q, noAck, options));
    }
    return tags;
  }

  async #consumeOne(q: Queue, noAck: boolean, options: WaitOptions): Promise<string> {
    const tag = await this.channel.consume(
      {
        queue: q.name,
        noAck,
        consumerTag: newConsumerTag(this.tagPrefix),
        ...(q.consumerArguments === undefined ? {} : { arguments: q.consumerArguments }),
      },
      this.#handler,
      options,
    );
    this.#active.set(q.name, tag);
    return tag;
  }

  /**
   * Cancels every consumer of this Consumer (delivered messages stay as they are).
   *
   * @example
   * ```ts
   * await consumer.cancel();
   * ```
   */
  async cancel(): Promise<void> {
    const names = [...this.#active.keys()];
    await Promise.all(names.map((n) => this.cancelByQueue(n)));
  }

  /**
   * Cancels every consumer and stops following the channel's events (the channel stays open).
   *
   * @example
   * ```ts
   * await consumer.close();
   * ```
   */
  async close(): Promise<void> {
    try {
      await this.cancel();
    } finally {
      this.channel.off('rename', this.#onRename);
    }
  }

  /**
   * Cancels the consumer of one queue.
   *
   * @example
   * ```ts
   * await consumer.cancelByQueue('q');
   * ```
   */
  async cancelByQueue(queue: string): Promise<void> {
    const tag = this.#active.get(queue);
    if (tag === undefined) return;
    this.#active.delete(queue);
    await this.channel.cancel({ consumerTag: tag });
    const q = this.queues.find((x) => x.name === queue);
    // RabbitMQ deletes an auto-delete queue with its last consumer: do not resurrect it on recovery.
    if (q?.autoDelete === true) this.channel.forgetQueue(queue);
  }

  /**
   * True when consuming from the queue.
   *
   * @example
   * ```ts
   * consumer.consumingFrom('q'); // true after consume()
   * ```
   */
  consumingFrom(queue: Queue | string): boolean {
    return this.#active.has(typeof queue === 'string' ? queue : queue.name);
  }

  /**
   * Pauses (false) or resumes (true) delivery: channel.flow.
   *
   * @example
   * ```ts
   * await consumer.flow(false);
   * ```
   */
  flow(active: boolean): Promise<void> {
    return this.channel.flow({ active });
  }

  /**
   * Purges every queue.
   *
   * @returns The total number of messages removed.
   * @example
   * ```ts
   * const n = await consumer.purge();
   * ```
   */
  async purge(): Promise<number> {
    let total = 0;
    for (const q of this.queues) total += await q.purge();
    return total;
  }

  /**
   * Sets the prefetch window (ignored with noAck); re-applied after reconnects.
   *
   * @example
   * ```ts
   * await consumer.qos({ prefetchCount: 10 });
   * ```
   */
  qos(options: { prefetchSize?: number; prefetchCount?: number; applyGlobal?: boolean } = {}): Promise<void> {
    return this.channel.qos({
      prefetchSize: options.prefetchSize ?? 0,
      prefetchCount: options.prefetchCount ?? 0,
      global: options.applyGlobal ?? false,
    });
  }

  /**
   * Asks the broker to redeliver unacknowledged messages.
   *
   * @example
   * ```ts
   * await consumer.recover({ requeue: true });
   * ```
   */
  recover(options: { requeue?: boolean } = {}): Promise<void> {
    return this.channel.recover({ requeue: options.requeue ?? false });
  }

  /**
   * Adds a callback `(body, message)`.
   *
   * @example
   * ```ts
   * consumer.registerCallback((body, m) => m.ack());
   * ```
   */
  registerCallback(callback: ConsumerCallback): void {
    this.callbacks.push(callback);
  }

  /**
   * Dispatches a decoded body to the callbacks.
   *
   * @throws CeleryAmqpError (code UNSUPPORTED, "No consumer callbacks registered") without callbacks.
   * @example
   * ```ts
   * consumer.receive(message.payload, message);
   * ```
   */
  receive(body: unknown, message: Message): void {
    const callbacks = this.callbacks;
    if (callbacks.length === 0) throw new CeleryAmqpError('No consumer callbacks registered', 'UNSUPPORTED');
    for (const cb of callbacks) cb(body, message);
  }

  /**
   * Moves to another channel (kombu's `revive`): queues are rebound, active consumers are
   * forgotten (call {@link consume} again), and queues are declared when autoDeclare.
   * Not needed after a reconnect: the channel recovers its consumers itself.
   *
   * @example
   * ```ts
   * await consumer.revive(await connection.channel());
   * await consumer.consume();
   * ```
   */
  async revive(channel: ChannelLike): Promise<void> {
    this.channel.off('rename', this.#onRename);
    this.channel = toChannel(channel);
    this.channel.on('rename', this.#onRename);
    this.queues = this.queues.map((q) => q.bind(this.channel));
    this.#active.clear();
    if (this.autoDeclare) await this.declare();
  }

  #receive(message: Message): void {
    message.accept = this.accept;
    message.maxBytes = this.maxBytes;
    try {
      const sink = this.#sink ?? this.onMessage;
      if (sink !== undefined) {
        sink(message);
      } else {
        let body: unknown;
        try {
          body = message.payload;
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          if (this.onDecodeError === undefined) throw error;
          this.onDecodeError(message, error);
          return;
        }
        this.receive(body, message);
      }
    } catch (err) {
      // Never thrown into the transport: reported, and the message left unacked (not lost).
      this.#report(err, message);
    }
  }

  #report(err: unknown, message: Message): void {
    const error =
      err instanceof CeleryAmqpError
        ? err
        : new CallbackError(
            `a consumer callback threw: ${err instanceof Error ? err.message : String(err)}`,
            {
              cause: err,
            },
          );
    if (this.listenerCount('error') === 0) {
      this.connection.reportError(error);
      return;
    }
    try {
      this.emit('error', error, message);
    } catch (listenerError) {
      // A throwing 'error' listener is the application's bug; it still must not vanish.
      this.connection.reportError(listenerError);
    }
  }

  /**
   * Iterates over messages (raw, decoded lazily through `payload`) until `break`, the
   * signal, or an idle `timeout` (TimeoutError). Consuming starts if needed; leaving the
   * loop cancels the consumers. Messages are buffered; bound the buffer with `prefetchCount`.
   *
   * @example
   * ```ts
   * for await (const m of consumer.iterate({ timeout: 5000 })) { handle(m.payload); m.ack(); break; }
   * ```
   */
  iterate(options: WaitOptions = {}): AsyncIterableIterator<Message> {
    const buffer: Message[] = [];
    let waiter: { resolve: (r: IteratorResult<Message>) => void; reject: (e: unknown) => void } | undefined;
    let failure: unknown;
    let done = false;
    let started: Promise<unknown> | undefined;
    const { timeout, signal } = options;
    const finish = async (): Promise<IteratorResult<Message>> => {
      if (!done) {
        done = true;
        unwatch();
        try {
          // Deliveries racing the cancel still land in the buffer, then go back to the queue.
          await this.cancel();
        } finally {
          if (this.#sink === sink) this.#sink = undefined;
          for (const m of buffer.splice(0)) if (!m.noAck && !m.acknowledged) m.requeue();
        }
      }
      return { value: undefined, done: true };
    };
    const fail = (err: unknown): void => {
      failure = err;
      if (waiter !== undefined) {
        const w = waiter;
        waiter = undefined;
        w.reject(err);
      }
    };
    const unwatch = signal === undefined ? () => undefined : onAbort(signal, () => fail(abortError(signal)));
    const sink = (m: Message): void => {
      if (waiter !== undefined) {
        const w = waiter;
        waiter = undefined;
        w.resolve({ value: m, done: false });
      } else buffer.push(m);
    };
    this.#sink = sink;
    const iterator: AsyncIterableIterator<Message> = {
      next: async () => {
        if (done) return { value: undefined, done: true };
        started ??= this.consume();
        try {
          await started;
        } catch (err) {
          await finish().catch(() => undefined);
          throw err;
        }
        const m = buffer.shift();
        if (m !== undefined) return { value: m, done: false };
        if (failure !== undefined) {
          await finish().catch(() => undefined);
          throw failure;
        }
        let timer: NodeJS.Timeout | undefined;
        try {
          return await new Promise<IteratorResult<Message>>((resolve, reject) => {
            waiter = { resolve, reject };
            if (timeout !== undefined) timer = setTimeout(() => fail(new TimeoutError()), timeout);
          });
        } catch (err) {
          await finish().catch(() => undefined);
          throw err;
        } finally {
          if (timer !== undefined) clearTimeout(timer);
        }
      },
      return: () => finish(),
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** `for await (const message of consumer)`: {@link iterate} without a deadline. */
  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    return this.iterate();
  }
}
