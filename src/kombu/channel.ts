/**
 * The kombu Channel: a recovering wrapper around one {@link TransportChannel}.
 *
 * Every operation takes the transport's own parameter object for its AMQP method, plus one
 * bag of {@link CallOptions} (`timeout`, `signal`, `recover`). The transport channel
 * underneath is replaced when it dies: after a channel error (e.g. a 406 on an inequivalent
 * declare) the next operation opens a fresh one; after a reconnect the Connection asks every
 * channel to recover, which reopens it, re-applies qos and flow, replays every declaration
 * made through it (in declaration order, by kind) and re-consumes every active consumer with
 * the same tag and handler.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { CallbackError, ChannelError, CeleryAmqpError } from '../errors.js';
// The transport types: one parameter object per AMQP method (AMQP.QueueBindParams, ...).
import type * as AMQP from '../transport/types.js';
import type { Connection } from './connection.js';
import { ChannelConsumers, newConsumerTag } from './channel-consumers.js';
import type { MessageHandler } from './channel-consumers.js';
import { Message, reportChannelCloseErrors } from './message.js';
import { ConsumerRestorer } from './queue-loss.js';
import { RecoveryRecord } from './recovery-record.js';
import type { RecordKey, RecordedOp } from './recovery-record.js';
import { isRecoverable, withDeadline } from './retry.js';
import type { WaitOptions } from './retry.js';
import type {
  CallOptions,
  ChannelEvents,
  ChannelOptions,
  RecoveringChannel,
  RecoveryHook,
} from './channel-types.js';

/** The params of a declaration as recorded: replayed waiting for the reply, never nowait. */
function waited<P extends { nowait?: boolean }>(params: P): P {
  return params.nowait === true ? Object.assign({}, params, { nowait: false }) : params;
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
 * await channel.declareExchange({ exchange: 'logs', type: 'fanout' });
 * await channel.bindQueue({ queue: 'q', exchange: 'logs' });
 * ```
 */
export class Channel extends EventEmitter<ChannelEvents> {
  /** The connection this channel belongs to. */
  readonly connection: Connection;
  /** Publisher-confirm mode. @default false */
  readonly confirm: boolean;

  /** The transport channel in use, `null` while (re)opening. */
  #transport: AMQP.TransportChannel | null = null;
  readonly #recordByDefault: boolean;
  /** Declarations replayed after a reconnect, and which queues are consumed from. */
  readonly #record: RecoveryRecord;
  #ready: Promise<AMQP.TransportChannel> | null = null;
  #generation = -1;
  #closed = false;
  #everOpened = false;
  #qos: AMQP.BasicQosParams | undefined;
  #flowActive = true;
  readonly #consumers: ChannelConsumers;
  readonly #hooks = new Set<RecoveryHook>();
  /** Brings back consumers whose queue was lost (queue-loss.ts). */
  readonly #restorer: ConsumerRestorer;
  /** Reports an error nobody else can receive: on the connection's error path. */
  readonly #report = (err: unknown): void => this.connection.reportError(err);

  /** Not for direct use: channels come from `connection.channel()`. */
  constructor(connection: Connection, options: ChannelOptions = {}) {
    super();
    this.connection = connection;
    this.confirm = options.confirm ?? false;
    this.#recordByDefault = options.recoverDeclarations ?? true;
    const record = new RecoveryRecord(options.recoveryLimit ?? 10000);
    this.#record = record;
    this.#consumers = new ChannelConsumers({
      record,
      report: this.#report,
      dispatched: () => connection.dispatched(),
      cancelled: (tag) => this.#emitSafely('cancel', () => this.emit('cancel', tag)),
    });
    this.#restorer = new ConsumerRestorer({
      connection,
      record,
      consumers: this.#consumers,
      transport: () => this.#transport,
      renamed: (original, newName) => this.#renamed(original, newName),
    });
  }

  /** Number of declarations remembered for recovery (diagnostics, tests). */
  get recoveryRecordSize(): number {
    return this.#record.size;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while a transport channel is open under this channel (false while it reopens). */
  get ready(): boolean {
    const ch = this.#transport;
    return ch !== null && !ch.closed;
  }

  /** Consumer tags currently registered (re-consumed after a reconnect). */
  get consumerTags(): string[] {
    return this.#consumers.tags();
  }

  /**
   * Runs `op` on the current transport channel, or once one is open again. The fast path
   * (channel open) calls `op` synchronously: no await, no allocation.
   */
  #run<T>(op: (ch: AMQP.TransportChannel) => Promise<T>, wait?: WaitOptions): Promise<T> {
    const ch = this.#transport;
    if (ch !== null && !ch.closed) return op(ch);
    return this.#slow(op, wait);
  }

  /**
   * {@link #run} for operations that are safe to repeat (declare, bind, consume, qos): when
   * the connection drops under one, it is carried out again once the channel has recovered
   * instead of failing the caller (getMany setting up thousands of consumers during a cut).
   * It fails when reaching the channel fails: the connection gave up, or was closed.
   */
  #idempotent<T>(op: (ch: AMQP.TransportChannel) => Promise<T>, wait?: WaitOptions): Promise<T> {
    let reached = false;
    return this.#run((ch) => {
      reached = true;
      return op(ch);
    }, wait).catch((err: unknown) => {
      if (!reached || this.#closed || !isRecoverable(err) || this.connection.options.autoReconnect === false)
        throw err;
      return this.#idempotent(op, wait);
    });
  }

  /**
   * Runs a declaration (idempotently) and records it for recovery, unless `op` is undefined
   * (passive) or the call opts out. A declaration the broker refuses is forgotten again:
   * replayed after every reconnect it would be refused every time, and a connection-level
   * refusal (503 for an unknown exchange type) would take the recovered connection down with
   * it, forever.
   */
  #declare<T>(
    op: RecordedOp | undefined,
    options: CallOptions | undefined,
    send: (ch: AMQP.TransportChannel) => Promise<T>,
  ): Promise<T> {
    if (op === undefined || !(options?.recover ?? this.#recordByDefault))
      return this.#idempotent(send, options);
    const token = this.#record.remember(op);
    return this.#idempotent(send, options).catch((err: unknown) => {
      if (err instanceof CeleryAmqpError && !err.recoverable && err.replyCode !== undefined)
        this.#record.forget(op, token);
      throw err;
    });
  }

  /** Forgets a recorded declaration (unbind, delete), then runs the operation. */
  #undo<T>(
    key: RecordKey,
    options: WaitOptions | undefined,
    send: (ch: AMQP.TransportChannel) => Promise<T>,
  ) {
    this.#record.forget(key);
    return this.#run(send, options);
  }

  #slow<T>(op: (ch: AMQP.TransportChannel) => Promise<T>, wait?: WaitOptions): Promise<T> {
    const ready = this.#whenOpen();
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
   * Resolves once a transport channel is open under this channel, (re)opening and
   * recovering one if needed.
   *
   * @param wait - `timeout` (ms) and `signal`. @default no deadline
   * @throws ChannelError (CHANNEL_CLOSED) after {@link close}; ConnectionError when the
   *   connection gave up; TimeoutError; AbortError.
   * @example
   * ```ts
   * await channel.whenReady({ timeout: 5000 });
   * ```
   */
  whenReady(wait?: WaitOptions): Promise<void> {
    return withDeadline(this.#whenOpen(), wait).then(() => undefined);
  }

  #whenOpen(): Promise<AMQP.TransportChannel> {
    const ch = this.#transport;
    if (ch !== null && !ch.closed) return Promise.resolve(ch);
    if (this.#ready !== null) return this.#ready;
    const ready = this.#reopen();
    this.#ready = ready;
    ready.then(
      (opened) => {
        if (this.#ready === ready) this.#ready = null;
        this.#transport = opened;
      },
      () => {
        if (this.#ready === ready) this.#ready = null;
      },
    );
    return ready;
  }

  /** @internal Called by the Connection after a reconnect: recovers eagerly if ever opened. */
  resume(): Promise<void> | undefined {
    if (this.#closed || !this.#everOpened) return undefined;
    return this.#whenOpen().then(() => undefined);
  }

  async #reopen(): Promise<AMQP.TransportChannel> {
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

  async #open(tconn: AMQP.TransportConnection): Promise<AMQP.TransportChannel> {
    const generation = this.connection.generation;
    // A new connection means the broker forgot our non-durable entities: redeclare them.
    // A mere channel error does not, and replaying the failed declaration would fail again.
    const redeclare = this.#everOpened && generation !== this.#generation;
    let ch = await this.#create(tconn);
    if (redeclare) {
      // Consumed queues gone with the old connection are reported before being declared again.
      await this.#restorer.reportMissing(tconn);
      ch = await this.#record.replay(ch, {
        create: () => this.#create(tconn),
        report: this.#report,
        renamed: (original, newName) => this.#renamed(original, newName),
      });
    }
    ch = await this.#consumers.restore(ch, () => this.#create(tconn));
    if (this.#everOpened) {
      for (const hook of [...this.#hooks]) {
        try {
          await hook(this.#recovering(ch));
        } catch (err) {
          if (isRecoverable(err)) throw err;
          this.#report(err);
          if (ch.closed) ch = await this.#create(tconn);
        }
      }
    }
    this.#generation = generation;
    this.#everOpened = true;
    return ch;
  }

  /** The view of a reopened transport channel handed to recovery hooks. */
  #recovering(ch: AMQP.TransportChannel): RecoveringChannel {
    return {
      get closed() {
        return ch.closed;
      },
      declareQueue: (params) => ch.declareQueue(params),
      bindQueue: (params) => ch.bindQueue(params),
      consume: (params, handler) =>
        ch.consume(params, this.#consumers.deliverer(handler, ch, params.noAck === true)),
    };
  }

  async #create(tconn: AMQP.TransportConnection): Promise<AMQP.TransportChannel> {
    const ch = await tconn.createChannel({ confirm: this.confirm });
    reportChannelCloseErrors(ch, this.#report);
    ch.on('return', (m) => this.#emitSafely('return', () => this.emit('return', m)));
    ch.on('cancel', (tag) => {
      const rec = this.#consumers.remove(tag);
      // Its queue was lost (deleted, or gone with its node): declared and consumed again.
      if (!this.#closed) this.#restorer.start(tag, rec);
      this.#emitSafely('cancel', () => this.emit('cancel', tag));
    });
    ch.on('close', () => this.#onTransportClose(ch));
    if (this.#qos !== undefined) await ch.qos(this.#qos);
    if (!this.#flowActive) await ch.flow({ active: false });
    return ch;
  }

  /** Emits an event; a listener that throws is reported instead of unwinding into the transport. */
  #emitSafely(event: keyof ChannelEvents, emit: () => unknown): void {
    try {
      emit();
    } catch (err) {
      this.#report(
        new CallbackError(`a '${event}' listener of the channel threw: ${String(err)}`, { cause: err }),
      );
    }
  }

  #onTransportClose(ch: AMQP.TransportChannel): void {
    if (ch !== this.#transport) return;
    this.#transport = null;
    if (this.#closed) return;
    // Consumers must come back without waiting for the next operation. After a lost
    // connection this waits for the reconnect; after a channel error it reopens at once.
    if (this.#consumers.size > 0 || this.#hooks.size > 0)
      this.#whenOpen().catch((err: unknown) => {
        // A close() of ours during the recovery ends it; that is not a fault to report.
        if (!this.#closed) this.#report(err);
      });
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
    if (previous !== undefined) this.#emitSafely('rename', () => this.emit('rename', previous, newName));
  }

  /**
   * exchange.declare; remembered for recovery unless passive or `recover` is false.
   *
   * @example
   * ```ts
   * await channel.declareExchange({ exchange: 'logs', type: 'fanout', durable: false });
   * ```
   */
  declareExchange(params: AMQP.ExchangeDeclareParams, options?: CallOptions): Promise<void> {
    const op =
      params.passive === true ? undefined : ({ method: 'declareExchange', params: waited(params) } as const);
    return this.#declare(op, options, (ch) => ch.declareExchange(params));
  }

  /**
   * exchange.delete; the exchange is forgotten for recovery.
   *
   * @example
   * ```ts
   * await channel.deleteExchange({ exchange: 'logs', ifUnused: true });
   * ```
   */
  deleteExchange(params: AMQP.ExchangeDeleteParams, options?: WaitOptions): Promise<void> {
    return this.#undo({ method: 'declareExchange', params }, options, (ch) => ch.deleteExchange(params));
  }

  /**
   * exchange.bind (exchange-to-exchange); remembered for recovery unless `recover` is false.
   *
   * @example
   * ```ts
   * await channel.bindExchange({ destination: 'audit', source: 'logs', routingKey: '#' });
   * ```
   */
  bindExchange(params: AMQP.ExchangeBindParams, options?: CallOptions): Promise<void> {
    return this.#declare({ method: 'bindExchange', params: waited(params) }, options, (ch) =>
      ch.bindExchange(params),
    );
  }

  /**
   * exchange.unbind; the binding is forgotten for recovery.
   *
   * @example
   * ```ts
   * await channel.unbindExchange({ destination: 'audit', source: 'logs', routingKey: '#' });
   * ```
   */
  unbindExchange(params: AMQP.ExchangeUnbindParams, options?: WaitOptions): Promise<void> {
    return this.#undo({ method: 'bindExchange', params }, options, (ch) => ch.unbindExchange(params));
  }

  /**
   * queue.declare; remembered for recovery unless passive or `recover` is false. A
   * server-named queue (name `''`) is remembered under its broker-given name and, after a
   * reconnect, declared anew with `''` (RabbitMQ refuses `amq.gen-*` names from clients):
   * its bindings and consumers follow it to the new name and 'rename' is emitted.
   *
   * @returns The declare-ok, or null with `nowait`.
   * @example
   * ```ts
   * const ok = await channel.declareQueue({ queue: 'tasks', durable: true });
   * ```
   */
  declareQueue(params: AMQP.QueueDeclareParams, options?: CallOptions): Promise<AMQP.QueueDeclareOk | null> {
    const record = params.passive !== true && (options?.recover ?? this.#recordByDefault);
    if (params.queue !== '') {
      const op = record ? ({ method: 'declareQueue', params: waited(params) } as const) : undefined;
      return this.#declare(op, options, (ch) => ch.declareQueue(params));
    }
    // A server-named declare is not repeated: a second one would make a second queue.
    const p = this.#run((ch) => ch.declareQueue(params), options);
    if (!record) return p;
    return p.then((ok) => {
      if (ok !== null) {
        const named = Object.assign({}, waited(params), { queue: ok.queue });
        this.#record.remember({ method: 'declareQueue', params: named }, { serverNamed: true });
      }
      return ok;
    });
  }

  /**
   * queue.bind; remembered for recovery unless `recover` is false.
   *
   * @example
   * ```ts
   * await channel.bindQueue({ queue: 'q', exchange: 'logs', routingKey: 'error' });
   * ```
   */
  bindQueue(params: AMQP.QueueBindParams, options?: CallOptions): Promise<void> {
    return this.#declare({ method: 'bindQueue', params: waited(params) }, options, (ch) =>
      ch.bindQueue(params),
    );
  }

  /**
   * queue.unbind; the binding is forgotten for recovery.
   *
   * @example
   * ```ts
   * await channel.unbindQueue({ queue: 'q', exchange: 'logs', routingKey: 'error' });
   * ```
   */
  unbindQueue(params: AMQP.QueueUnbindParams, options?: WaitOptions): Promise<void> {
    return this.#undo({ method: 'bindQueue', params }, options, (ch) => ch.unbindQueue(params));
  }

  /**
   * queue.purge: resolves with the number of messages removed.
   *
   * @example
   * ```ts
   * const n = await channel.purgeQueue({ queue: 'q' });
   * ```
   */
  purgeQueue(params: AMQP.QueuePurgeParams, options?: WaitOptions): Promise<number> {
    return this.#run((ch) => ch.purgeQueue(params), options);
  }

  /**
   * queue.delete; the queue and its bindings are forgotten for recovery. Resolves with the
   * number of messages deleted.
   *
   * @example
   * ```ts
   * await channel.deleteQueue({ queue: 'q', ifEmpty: true });
   * ```
   */
  deleteQueue(params: AMQP.QueueDeleteParams, options?: WaitOptions): Promise<number> {
    this.forgetQueue(params.queue);
    return this.#run((ch) => ch.deleteQueue(params), options);
  }

  /**
   * basic.publish of raw bytes (a Producer serializes; this does not).
   *
   * @example
   * ```ts
   * await channel.publish({ exchange: '', routingKey: 'q', body: Buffer.from('hi') });
   * ```
   */
  publish(params: AMQP.BasicPublishParams, options?: WaitOptions): Promise<void> {
    const ch = this.#transport;
    if (ch !== null && !ch.closed) return ch.publish(params);
    return this.#slow((c) => c.publish(params), options);
  }

  /**
   * basic.get as a {@link Message}, or null when the queue is empty.
   *
   * @example
   * ```ts
   * const m = await channel.get({ queue: 'q' });
   * m?.ack();
   * ```
   */
  get(params: AMQP.BasicGetParams, options?: WaitOptions): Promise<Message | null> {
    const noAck = params.noAck === true;
    return this.#run(
      (ch) => ch.get(params).then((d) => (d === null ? null : new Message(d, ch, { noAck }))),
      options,
    );
  }

  /**
   * basic.consume: `handler` gets each message. The consumer survives reconnects
   * (re-consumed with the same tag and handler), unless `recover` is false: then it is not
   * recorded, ends with its transport channel, and a {@link addRecoveryHook | recovery hook}
   * must bring it back.
   *
   * @returns The consumer tag.
   * @example
   * ```ts
   * const tag = await channel.consume({ queue: 'q' }, (m) => m.ack());
   * ```
   */
  async consume(
    params: AMQP.BasicConsumeParams,
    handler: MessageHandler,
    options?: CallOptions,
  ): Promise<string> {
    const tag = params.consumerTag ?? newConsumerTag();
    const withTag = Object.assign({}, params, { consumerTag: tag });
    const noAck = params.noAck === true;
    await this.#idempotent(
      (ch) => ch.consume(withTag, this.#consumers.deliverer(handler, ch, noAck)),
      options,
    );
    // Not recorded: nothing is kept per consumer but the transport's own entry.
    if (options?.recover !== false) this.#consumers.add(withTag, handler);
    return tag;
  }

  /**
   * Registers a hook run on every channel reopened after a reconnect or a channel error,
   * once the recorded declarations and consumers are back: for callers that restore their
   * own state more cheaply than one record per queue would (getMany over 100,000 queues
   * re-consumes just the ids still pending).
   *
   * @returns A function that removes the hook.
   * @example
   * ```ts
   * const off = channel.addRecoveryHook(async (ch) => { await ch.consume({ queue: q }, onMessage); });
   * off();
   * ```
   */
  addRecoveryHook(hook: RecoveryHook): () => void {
    this.#hooks.add(hook);
    return () => {
      this.#hooks.delete(hook);
    };
  }

  /**
   * basic.cancel; the consumer is not re-consumed after a reconnect.
   *
   * @example
   * ```ts
   * await channel.cancel({ consumerTag: tag });
   * ```
   */
  async cancel(params: AMQP.BasicCancelParams, options?: WaitOptions): Promise<void> {
    // Being brought back after its queue was lost: it simply is not.
    if (this.#restorer.cancel(params.consumerTag)) return;
    const known = this.#consumers.remove(params.consumerTag);
    const ch = this.#transport;
    // Without an open channel the broker has already dropped the consumer.
    if (ch === null || ch.closed || !known) return;
    await withDeadline(ch.cancel(params), options);
  }

  /**
   * basic.qos; re-applied on every reopened channel.
   *
   * @example
   * ```ts
   * await channel.qos({ prefetchCount: 10 });
   * ```
   */
  qos(params: AMQP.BasicQosParams, options?: WaitOptions): Promise<void> {
    this.#qos = params;
    return this.#idempotent((ch) => ch.qos(params), options);
  }

  /**
   * basic.recover: redeliver unacked messages.
   *
   * @example
   * ```ts
   * await channel.recover({ requeue: true });
   * ```
   */
  recover(params: AMQP.BasicRecoverParams, options?: WaitOptions): Promise<void> {
    return this.#run((ch) => ch.recover(params), options);
  }

  /**
   * channel.flow; the state is re-applied on reopened channels.
   *
   * @example
   * ```ts
   * await channel.flow({ active: false });
   * ```
   */
  flow(params: AMQP.ChannelFlowParams, options?: WaitOptions): Promise<void> {
    this.#flowActive = params.active;
    return this.#run((ch) => ch.flow(params), options);
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
    this.#restorer.close();
    this.#consumers.clear();
    this.#record.clear();
    this.connection.forgetChannel(this);
    const ch = this.#transport;
    this.#transport = null;
    if (ch !== null && !ch.closed) {
      await ch.close().catch((err: unknown) => {
        // Closing an already dead channel is not worth reporting.
        if (!(err instanceof CeleryAmqpError)) throw err;
      });
    }
    this.#emitSafely('close', () => this.emit('close'));
  }
}
