/**
 * A lightweight consumer over many queues at once (Celery's `get_many` over one queue per
 * task): the queues are spread over a few channels ("lanes"), declared and consumed in
 * pipelined batches, acknowledged in bulk, and torn down by closing the lanes.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { CallbackError, CeleryAmqpError } from '../errors.js';
import type { QueueDeclareOk, QueueDeclareParams, TransportChannel } from '../transport/types.js';
import type { MessageHandler } from './channel-consumers.js';
import type { RecoveringChannel } from './channel-types.js';
import type { Channel } from './channel.js';
import type { Connection } from './connection.js';
import type { Exchange } from './exchange.js';
import { deliveryChannel } from './message.js';
import type { Message } from './message.js';
import { isRecoverable } from './retry.js';

/** What a lane sets a queue up with: the kombu Channel, or the reopened one during recovery. */
type LaneOps = Pick<RecoveringChannel, 'declareQueue' | 'bindQueue' | 'consume'>;

/** Options of a {@link ManyQueueConsumer}. */
export interface ManyQueueConsumerOptions {
  /** How every queue is declared: everything but its name. @default {} (the transport's defaults) */
  queue?: Omit<QueueDeclareParams, 'queue' | 'passive' | 'nowait'>;
  /**
   * Declared once on the first lane, and each queue bound to it with the queue's name as
   * routing key, unless the declare-ok shows messages already in the queue (something routes
   * to it already) or the queue is no longer {@link wanted}. @default undefined (no binding)
   */
  bindTo?: Exchange | undefined;
  /** Gets every message, raw (decoded lazily); settle it, or {@link ManyQueueConsumer.ack} it. */
  onMessage: MessageHandler;
  /**
   * Whether a queue is still needed: after a reconnect only those are set up again, and a
   * queue no longer wanted is not bound. @default every queue, always
   */
  wanted?: ((queue: string) => boolean) | undefined;
  /** Accepted content types of the messages (mime set). @default undefined (all but pickle) */
  accept?: ReadonlySet<string> | undefined;
  /** Decoded size limit of the messages in bytes. @default undefined */
  maxBytes?: number | undefined;
  /** Most channels (lanes) used. @default 64 */
  maxLanes?: number;
  /** Fewest queues per lane: small sets stay on one channel. @default 64 */
  minPerLane?: number;
  /** Queues a lane declares and consumes per pipelined batch. @default 16 */
  batch?: number;
  /** Deferred acks ({@link ManyQueueConsumer.ack}) are sent this often, in ms; 0 only on flush. @default 1000 */
  ackInterval?: number;
}

/** Events of a {@link ManyQueueConsumer}. */
export interface ManyQueueConsumerEvents {
  /**
   * Setting queues up again after a reconnect failed for good (e.g. a declaration refused).
   * Without a listener the error goes to the connection's error path.
   */
  error: [error: CeleryAmqpError];
}

/**
 * Consumes from many queues over up to `maxLanes` channels. RabbitMQ runs each channel's
 * methods one after another, so one channel caps the setup at one queue per round trip;
 * each lane takes batches of `batch` queues in turn from the list, declaring them (waiting
 * for the declare-ok: its message count spares the bind of a queue already routed to) and
 * consuming, pipelined.
 *
 * Nothing is recorded per queue (at 100,000 queues the records were most of the memory):
 * the batches a lane took are its record, and after a reconnect it sets up again, on the
 * reopened channel, the queues of those batches that are still {@link ManyQueueConsumerOptions.wanted}.
 *
 * Consumers are not cancelled one by one: {@link close} closes the lanes' channels, one
 * round trip each, which cancels them all and hands back what was not acked (RabbitMQ then
 * deletes auto-delete queues).
 *
 * @example
 * ```ts
 * const many = new ManyQueueConsumer(connection, { queue: { autoDelete: true }, onMessage: (m) => many.ack(m) });
 * await many.consume(['q1', 'q2']);
 * // ...
 * await many.close();
 * ```
 */
export class ManyQueueConsumer extends EventEmitter<ManyQueueConsumerEvents> {
  /** The connection the lanes are opened on. */
  readonly connection: Connection;
  readonly #options: ManyQueueConsumerOptions;
  readonly #spec: Omit<QueueDeclareParams, 'queue'>;
  readonly #wanted: (queue: string) => boolean;
  readonly #lanes: Channel[] = [];
  readonly #unhook: Array<() => void> = [];
  /** Per transport channel, the highest delivery tag to ack (see {@link ack}). */
  readonly #toAck = new Map<TransportChannel, number>();
  #ackTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** One handler for every lane and queue: no per-queue closure. */
  readonly #handler: MessageHandler;

  constructor(connection: Connection, options: ManyQueueConsumerOptions) {
    super();
    this.connection = connection;
    this.#options = options;
    this.#spec = { ...options.queue, passive: false, nowait: false };
    this.#wanted = options.wanted ?? (() => true);
    const { accept, maxBytes, onMessage } = options;
    this.#handler = (message) => {
      message.accept = accept;
      message.maxBytes = maxBytes;
      onMessage(message);
    };
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sets up a consumer on every queue (each queue once, in order), spread over the lanes.
   * Resolves once all are consuming, or early when {@link close} was called.
   *
   * @throws ChannelError for a declaration the broker refused; ConnectionError when the
   *   connection gave up.
   * @example
   * ```ts
   * await many.consume(queueNames);
   * ```
   */
  async consume(queues: readonly string[]): Promise<void> {
    if (queues.length === 0 || this.#closed) return;
    const o = this.#options;
    const lanes = Math.min(o.maxLanes ?? 64, Math.ceil(queues.length / (o.minPerLane ?? 64)));
    // Batches small enough that every lane gets a share of a small set.
    const batch = Math.min(o.batch ?? 16, Math.ceil(queues.length / lanes));
    const interval = o.ackInterval ?? 1000;
    if (interval > 0 && this.#ackTimer === undefined) {
      // A long setup acks as it goes, so that the broker does not hold every delivered message.
      this.#ackTimer = setInterval(() => this.flushAcks(), interval);
      this.#ackTimer.unref();
    }
    const first = await this.#openLane();
    if (first === undefined) return;
    const exchange = o.bindTo;
    if (exchange !== undefined && exchange.name !== '') await exchange.bind(first).declare();
    const cursor = { next: 0 };
    await Promise.all(
      Array.from({ length: lanes }, async (_, i) => {
        const ch = i === 0 ? first : await this.#openLane();
        if (ch !== undefined) await this.#runLane(ch, queues, cursor, batch);
      }),
    );
  }

  /** Opens a lane's channel, or closes it again when {@link close} came first. */
  async #openLane(): Promise<Channel | undefined> {
    const ch = await this.connection.channel();
    if (this.#closed) {
      await ch.close();
      return undefined;
    }
    this.#lanes.push(ch);
    return ch;
  }

  /** Takes batches from the shared cursor until the list is done; recovers what it took. */
  async #runLane(
    ch: Channel,
    queues: readonly string[],
    cursor: { next: number },
    batch: number,
  ): Promise<void> {
    const taken: number[] = [];
    const spec = this.#spec;
    const noRecord = { recover: false } as const;
    const direct: LaneOps = {
      declareQueue: (params) => ch.declareQueue(params, noRecord),
      bindQueue: (params) => ch.bindQueue(params, noRecord),
      consume: (params, handler) => ch.consume(params, handler, noRecord),
    };
    const recoverLane = async (reopened: RecoveringChannel): Promise<void> => {
      let ops: Array<Promise<unknown>> = [];
      for (const start of taken) {
        for (let i = start; i < Math.min(queues.length, start + batch); i += 1) {
          const queue = queues[i];
          if (queue === undefined || !this.#wanted(queue)) continue;
          ops.push(...this.#setUp(reopened, queue, spec));
          if (ops.length >= 2 * batch) {
            await Promise.all(ops);
            ops = [];
          }
        }
      }
      await Promise.all(ops);
    };
    this.#unhook.push(
      ch.addRecoveryHook((reopened) =>
        recoverLane(reopened).catch((err: unknown) => {
          // A lost connection makes the channel recover again; anything else is reported.
          if (isRecoverable(err)) throw err;
          this.#fail(err);
        }),
      ),
    );
    while (cursor.next < queues.length) {
      if (this.#closed) return;
      const start = cursor.next;
      const end = Math.min(queues.length, start + batch);
      cursor.next = end;
      taken.push(start);
      const ops: Array<Promise<unknown>> = [];
      for (let i = start; i < end; i += 1) {
        const queue = queues[i];
        if (queue !== undefined && this.#wanted(queue)) ops.push(...this.#setUp(direct, queue, spec));
      }
      await Promise.all(ops);
    }
  }

  /**
   * Sets up one queue: declared and consumed, and bound when still empty. A queue that
   * already holds a message was routed to through its binding, so the bind (a metadata
   * transaction on RabbitMQ: as costly as the rest of the setup together) is skipped; so is
   * the bind of a queue whose message overtook the declare-ok within one socket read.
   */
  #setUp(ops: LaneOps, queue: string, spec: Omit<QueueDeclareParams, 'queue'>): Array<Promise<unknown>> {
    const exchange = this.#options.bindTo?.name;
    const declared = ops.declareQueue({ ...spec, queue }).then((ok: QueueDeclareOk | null) => {
      if (exchange === undefined || exchange === '') return undefined;
      if ((ok === null || ok.messageCount === 0) && this.#wanted(queue))
        return ops.bindQueue({ queue, exchange, routingKey: queue, nowait: true });
      return undefined;
    });
    return [declared, ops.consume({ queue, noAck: false }, this.#handler)];
  }

  #fail(err: unknown): void {
    const error =
      err instanceof CeleryAmqpError
        ? err
        : new CallbackError(`setting queues up again failed: ${String(err)}`, { cause: err });
    if (this.listenerCount('error') === 0) {
      this.connection.reportError(error);
      return;
    }
    try {
      this.emit('error', error);
    } catch (listenerError) {
      this.connection.reportError(listenerError);
    }
  }

  /**
   * Acknowledges `message` and every message delivered before it on the same channel,
   * deferred: the next flush (every `ackInterval` ms, {@link flushAcks}, or {@link close})
   * sends one `multiple` ack per channel. Messages arrive in tag order on a channel, so
   * acking the last one handled acks exactly those handled before it; do not call it for a
   * message delivered after one that must stay unacked.
   *
   * @example
   * ```ts
   * onMessage: (m) => { handle(m.payload); many.ack(m); }
   * ```
   */
  ack(message: Message): void {
    const ch = deliveryChannel(message);
    if (ch !== null) this.#toAck.set(ch, message.deliveryTag);
  }

  /**
   * Sends the deferred acks now. Those of a channel that closed meanwhile are dropped: its
   * unacked messages went back to their queues.
   *
   * @example
   * ```ts
   * many.flushAcks();
   * ```
   */
  flushAcks(): void {
    for (const [ch, tag] of this.#toAck) {
      if (ch.closed) continue;
      try {
        ch.ack({ deliveryTag: tag, multiple: true });
      } catch {
        // Closing under us: same as above.
      }
    }
    this.#toAck.clear();
  }

  /**
   * Ends every consumer by closing the lanes' channels (idempotent); what was not acked
   * goes back to its queue, and RabbitMQ deletes auto-delete queues.
   *
   * @param options - `flushAcks`: send the deferred acks first. Skip it for auto-delete
   *   queues, which the close deletes, messages and all (the acks doubled RabbitMQ's
   *   teardown). @default true
   * @example
   * ```ts
   * await many.close({ flushAcks: false });
   * ```
   */
  async close(options: { flushAcks?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ackTimer);
    this.#ackTimer = undefined;
    for (const off of this.#unhook.splice(0)) off();
    if (options.flushAcks ?? true) this.flushAcks();
    this.#toAck.clear();
    await Promise.allSettled(this.#lanes.splice(0).map((c) => c.close()));
  }
}
