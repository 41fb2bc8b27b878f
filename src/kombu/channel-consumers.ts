/**
 * The consumers of a kombu Channel: their records (re-consumed after a reconnect), the
 * transport callbacks that turn deliveries into Messages, and the restart after a reconnect.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { CallbackError, CeleryAmqpError, ChannelError } from '../errors.js';
import type { BasicConsumeParams, Delivery, TransportChannel } from '../transport/types.js';
import { Message } from './message.js';
import type { RecoveryRecord } from './recovery-record.js';
import { isRecoverable } from './retry.js';

/**
 * A consumer's handler: each message as received (raw, decoded lazily). A handler that
 * throws is reported as a `CallbackError` on the connection's error path.
 *
 * @example
 * ```ts
 * const handler: MessageHandler = (message) => { console.log(message.payload); message.ack(); };
 * ```
 */
export type MessageHandler = (message: Message) => void;

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

/** What the consumers need from their Channel. */
export interface ConsumersHost {
  /** The channel's recovery record: consumed queues are pinned there, renames looked up. */
  readonly record: RecoveryRecord;
  /** Reports an error nobody else can receive. */
  report(err: unknown): void;
  /** A delivery was dispatched (wakes drainEvents). */
  dispatched(): void;
  /** A consumer ended without being cancelled by the application. */
  cancelled(consumerTag: string): void;
}

/** A registered consumer: how it was started, and its handler. */
export interface ConsumerRecord {
  readonly params: BasicConsumeParams & { consumerTag: string };
  readonly handler: MessageHandler;
}

/** Message options per consume mode, shared by every delivery. */
const ACKED = { noAck: false } as const;
const UNACKED = { noAck: true } as const;

/** The transport callbacks of a handler on one transport channel (one closure each, not per consumer). */
interface Deliverers {
  readonly channel: TransportChannel;
  acked?: (delivery: Delivery) => void;
  noAck?: (delivery: Delivery) => void;
}

/**
 * The consumers registered on one Channel. Not part of the package's API.
 *
 * @example
 * ```ts
 * const consumers = new ChannelConsumers(host);
 * await tch.consume(params, consumers.deliverer(handler, tch, false));
 * consumers.add(params, handler);
 * ```
 */
export class ChannelConsumers {
  readonly #host: ConsumersHost;
  readonly #records = new Map<string, ConsumerRecord>();
  readonly #deliverers = new WeakMap<MessageHandler, Deliverers>();

  constructor(host: ConsumersHost) {
    this.#host = host;
  }

  /** Number of registered consumers. */
  get size(): number {
    return this.#records.size;
  }

  /** The registered consumer tags. */
  tags(): string[] {
    return [...this.#records.keys()];
  }

  /** Registers a consumer started with `params` (re-consumed after a reconnect). */
  add(params: BasicConsumeParams & { consumerTag: string }, handler: MessageHandler): void {
    this.#records.set(params.consumerTag, { params, handler });
    this.#host.record.pin(params.queue);
  }

  /** Forgets a consumer (cancelled, or cancelled by the broker). @returns Its record, if it was registered. */
  remove(consumerTag: string): ConsumerRecord | undefined {
    const rec = this.#records.get(consumerTag);
    if (rec === undefined) return undefined;
    this.#records.delete(consumerTag);
    this.#host.record.unpin(rec.params.queue);
    return rec;
  }

  /** The queues consumed from (each once). */
  queues(): string[] {
    return [...new Set([...this.#records.values()].map((r) => r.params.queue))];
  }

  /**
   * Registers a consumer the broker cancelled again and consumes on `ch` with its tag (its
   * queue was lost and declared again: queue-loss.ts). Without an open channel the reopen
   * under way re-consumes it with every other registered consumer.
   */
  async restart(rec: ConsumerRecord, ch: TransportChannel | null): Promise<void> {
    this.add(rec.params, rec.handler);
    if (ch === null || ch.closed) return;
    await this.#start(ch, rec).catch((err: unknown) => {
      // A refused consume closes its channel: the reopen consumes again and reports a failure there.
      if (!(err instanceof CeleryAmqpError)) throw err;
    });
  }

  #start(ch: TransportChannel, rec: ConsumerRecord): Promise<string> {
    return ch.consume(
      Object.assign({}, rec.params, { queue: this.#host.record.currentName(rec.params.queue) }),
      this.deliverer(rec.handler, ch, rec.params.noAck === true),
    );
  }

  /** Forgets every consumer (the channel was closed). */
  clear(): void {
    this.#records.clear();
  }

  /**
   * The transport callback of `handler` on `ch`: one per handler, channel and ack mode,
   * shared by every consumer that uses it (getMany's many consumers hold one closure).
   */
  deliverer(handler: MessageHandler, ch: TransportChannel, noAck: boolean): (d: Delivery) => void {
    let known = this.#deliverers.get(handler);
    if (known === undefined || known.channel !== ch) {
      known = { channel: ch };
      this.#deliverers.set(handler, known);
    }
    if (noAck) return (known.noAck ??= (d) => this.#deliver(handler, new Message(d, ch, UNACKED)));
    return (known.acked ??= (d) => this.#deliver(handler, new Message(d, ch, ACKED)));
  }

  /**
   * Runs a consumer's handler. A handler that throws must never unwind into the transport
   * (amqplib would see an uncaught exception, the embedded broker would close the channel):
   * it is reported as a CallbackError on the connection's error path instead.
   */
  #deliver(handler: MessageHandler, message: Message): void {
    try {
      handler(message);
    } catch (err) {
      const rk = JSON.stringify(message.deliveryInfo.routingKey);
      this.#host.report(
        new CallbackError(`the consumer callback for ${rk} threw: ${String(err)}`, { cause: err }),
      );
    } finally {
      this.#host.dispatched();
    }
  }

  /**
   * Re-consumes every consumer with its tag on a reopened channel, pipelined, and resolves
   * with the transport channel still open at the end. When one fails (its queue is gone:
   * 404 closes the channel, and with it every consumer already restarted on it), the
   * failures are dropped and reported and the rest restart one by one on a fresh channel.
   *
   * @throws the first recoverable (connection) error: the recovery starts over.
   */
  async restore(first: TransportChannel, create: () => Promise<TransportChannel>): Promise<TransportChannel> {
    const records = [...this.#records];
    const results = await Promise.allSettled(records.map(([, rec]) => this.#start(first, rec)));
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length === 0) return first;
    for (const r of failed) if (isRecoverable(r.reason)) throw r.reason;
    let ch = first.closed ? await create() : first;
    // Each failure drops one consumer; a failure that closes the channel takes every
    // consumer restarted on it along, so the pass starts over on a fresh one.
    for (let broken = true; broken;) {
      broken = false;
      for (const [i, [tag, rec]] of records.entries()) {
        if (!this.#records.has(tag)) continue;
        // Those that succeeded on a channel still open need nothing more.
        if (ch === first && results[i]?.status === 'fulfilled') continue;
        try {
          await this.#start(ch, rec);
        } catch (err) {
          if (isRecoverable(err)) throw err;
          this.#drop(tag, rec, err);
          if (ch.closed) {
            ch = await create();
            broken = true;
            break;
          }
        }
      }
    }
    return ch;
  }

  /** A consumer that cannot be restarted: forgotten, reported, and announced as cancelled. */
  #drop(tag: string, rec: ConsumerRecord, err: unknown): void {
    if (!this.remove(tag)) return;
    const reason = err instanceof Error ? err.message : String(err);
    this.#host.report(
      new ChannelError(
        `consumer ${tag} of queue ${JSON.stringify(rec.params.queue)} was dropped: it could not be ` +
          `restarted after a reconnect (${reason})`,
        { code: err instanceof CeleryAmqpError ? err.code : 'CHANNEL_CLOSED', cause: err },
      ),
    );
    this.#host.cancelled(tag);
  }
}
