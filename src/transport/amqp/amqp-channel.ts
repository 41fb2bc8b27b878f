/**
 * One AMQP channel over amqplib, with call-order execution, `nowait` methods, publisher
 * confirms, backpressure and emulated flow control.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Channel, ConfirmChannel, ConsumeMessage, Message } from 'amqplib';
import { ChannelError, ConnectionError, type CeleryAmqpError } from '../../errors.js';
// The transport types: one parameter object per AMQP method (AMQP.QueueBindParams, ...).
import type * as AMQP from '../types.js';
import { toDelivery, toPublishOptions, toReturned, typeTable } from './amqp-codec.js';
import { fromAmqplibClose, fromAmqplibFailure } from './amqp-errors.js';
import { M, amqplibInternals, closeUntilClosed, replyNumber, replyString } from './amqplib-internals.js';
import type { AmqplibChannelInternals } from './amqplib-internals.js';

/**
 * The connection side a channel needs: why the connection went away, if it did.
 * Implemented by AmqpConnection.
 */
export interface ChannelHost {
  /** The error the connection was lost with; undefined while open or after a clean close. */
  readonly lostError: CeleryAmqpError | undefined;
  /** True once the connection is closed or closing. */
  readonly closed: boolean;
}

/**
 * Runs a consumer callback. An exception from it must not unwind into amqplib's frame
 * parser (which would tear the connection down) or into the operation queue; it is
 * rethrown on its own, as an uncaught exception in the caller's code would be.
 */
function dispatch(callback: () => void): void {
  try {
    callback();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** A queued operation. `rpc` ones wait for the previous RPC's reply; see {@link AmqpChannel}. */
interface Op {
  kind: 'rpc' | 'send' | 'publish';
  run: () => void;
  fail: (err: Error) => void;
}

/**
 * A {@link TransportChannel} over an amqplib channel.
 *
 * **Call order.** amqplib queues RPCs client-side (one outstanding per channel, as AMQP
 * requires) but writes publishes and other non-RPC frames at once, so a publish made right
 * after an un-awaited declare could overtake it. This class keeps its own FIFO: an RPC is
 * handed to amqplib only when no other RPC is outstanding (so amqplib writes it at once),
 * and a non-RPC frame (publish, `nowait` method, ack) is written at once unless something
 * is queued before it. A publish after a single in-flight declare therefore goes out
 * immediately, right behind the declare on the socket, and a declare + bind + publish
 * with `nowait` costs no round trip at all.
 *
 * **nowait.** Declares, binds and exchange deletes with `nowait: true` are written with
 * the nowait bit set and resolve once written; a failure closes the channel later with the
 * typed error as the 'close' event argument (and rejects every operation still pending).
 *
 * **Backpressure.** When amqplib's write buffer is full (publish returns false), later
 * publishes, and everything called after them, wait for its 'drain'.
 *
 * **flow().** RabbitMQ does not accept channel.flow from clients; `flow(false)` pauses the
 * dispatch of deliveries to consumers (buffering them in order, the broker keeps sending
 * up to the prefetch limit) and `flow(true)` dispatches the buffer and resumes.
 *
 * @example
 * ```ts
 * const ch = await connection.createChannel();
 * void ch.declareQueue({ queue: q, durable: true, autoDelete: true, nowait: true });
 * void ch.bindQueue({ queue: q, exchange: 'celeryresults', routingKey: q, nowait: true });
 * await ch.publish({ exchange: 'celeryresults', routingKey: q, body, properties: { contentType: 'application/json' } });
 * ```
 */
export class AmqpChannel extends EventEmitter<AMQP.TransportChannelEvents> implements AMQP.TransportChannel {
  /** Channel number (diagnostics). */
  readonly id: number;
  /** True when opened with `confirm: true`. */
  readonly confirm: boolean;

  readonly #ch: Channel;
  /** The same channel when in confirm mode (its publish takes a confirm callback). */
  readonly #confirming: ConfirmChannel | undefined;
  readonly #raw: AmqplibChannelInternals;
  readonly #host: ChannelHost;
  readonly #queue: Op[] = [];
  #rpcBusy = false;
  #draining = false;
  #closing = false;
  #closed = false;
  /** The typed error the broker closed the channel with, when it did. */
  #serverError: CeleryAmqpError | undefined;
  #paused = false;
  readonly #held: Array<() => void> = [];
  /** amqplib callbacks by delivery handler (see #callbackFor). */
  readonly #callbacks = new WeakMap<
    (delivery: AMQP.Delivery) => void,
    (message: ConsumeMessage | null) => void
  >();

  /**
   * Wraps an open amqplib channel. Called by AmqpConnection, not by users.
   *
   * @param channel - An open amqplib Channel.
   * @param host - The owning connection, consulted for the reason of a connection loss.
   * @param confirming - The same channel as a ConfirmChannel, when opened in confirm mode.
   * @throws CeleryAmqpError (UNSUPPORTED) when amqplib lacks the internals this class uses.
   */
  constructor(channel: Channel, host: ChannelHost, confirming?: ConfirmChannel) {
    super();
    this.#ch = channel;
    this.#confirming = confirming;
    this.#raw = amqplibInternals(channel);
    this.#host = host;
    this.confirm = confirming !== undefined;
    this.id = this.#raw.ch;

    // amqplib emits 'error' (with the broker's reply code) before 'close'; without a
    // listener it would be an uncaught 'error' event.
    channel.on('error', (err: unknown) => {
      this.#serverError ??= fromAmqplibClose(err) ?? fromAmqplibFailure(err);
    });
    channel.on('close', () => {
      this.#closed = true;
      // When the whole connection goes, amqplib closes its channels before emitting the
      // connection's 'close', so the connection's reason is known only a tick later.
      queueMicrotask(() => this.#finish());
    });
    channel.on('return', (message: Message) => this.emit('return', toReturned(message)));
    channel.on('cancel', (fields: { consumerTag: string }) => this.emit('cancel', fields.consumerTag));
    channel.on('drain', () => {
      this.#draining = false;
      this.#pump();
    });
    // Listeners of ours that throw (a user's 'return' or 'cancel' handler) must not unwind
    // into amqplib's frame loop; amqplib reports them here instead, and they are rethrown.
    channel.on('handler-error', (err: unknown) =>
      dispatch(() => {
        throw err;
      }),
    );
  }

  /** True once the channel has closed (by us or by the broker). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Why operations on this channel fail now that it is closed or closing. */
  #closeError(): CeleryAmqpError {
    return (
      this.#serverError ??
      this.#host.lostError ??
      (this.#host.closed
        ? new ConnectionError('connection closed', { code: 'CONNECTION_CLOSED' })
        : new ChannelError(`channel ${this.id} closed`, { code: 'CHANNEL_CLOSED' }))
    );
  }

  #mapError(err: unknown): CeleryAmqpError {
    const closed = fromAmqplibClose(err);
    if (closed !== undefined) {
      // The RPC that caused the close and the 'close' event report the same instance.
      return this.#serverError !== undefined && this.#serverError.code === closed.code
        ? this.#serverError
        : closed;
    }
    if (this.#closed || this.#closing || this.#host.closed) return this.#closeError();
    return fromAmqplibFailure(err);
  }

  #finish(): void {
    const error = this.#serverError ?? this.#host.lostError;
    const pending = this.#queue.splice(0);
    const failure = this.#closeError();
    for (const op of pending) op.fail(failure);
    this.#held.length = 0;
    if (error === undefined) this.emit('close');
    else this.emit('close', error);
  }

  #enqueue(op: Op): void {
    if (this.#closed || this.#closing) {
      op.fail(this.#closeError());
      return;
    }
    this.#queue.push(op);
    if (this.#queue.length === 1) this.#pump();
  }

  /** Runs queued operations in order until one must wait (an RPC or a full buffer). */
  #pump(): void {
    while (this.#queue.length > 0 && !this.#closed) {
      const op = this.#queue[0]!;
      if (op.kind === 'rpc' && this.#rpcBusy) return;
      if (op.kind === 'publish' && this.#draining) return;
      this.#queue.shift();
      op.run();
    }
  }

  /** Queues an RPC; `start` must send it synchronously (amqplib does when idle). */
  #rpc<T>(start: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#enqueue({
        kind: 'rpc',
        fail: reject,
        run: () => {
          this.#rpcBusy = true;
          const done = (): void => {
            this.#rpcBusy = false;
            this.#pump();
          };
          let reply: Promise<T>;
          try {
            reply = start();
          } catch (err) {
            reject(this.#mapError(err));
            done();
            return;
          }
          reply.then(
            (value) => {
              resolve(value);
              done();
            },
            (err: unknown) => {
              reject(this.#mapError(err));
              done();
            },
          );
        },
      });
    });
  }

  /** A method RPC by id with exactly these fields; resolves with the reply's fields. */
  #method(method: number, fields: object, expect: number): Promise<unknown> {
    return this.#rpc(() => this.#raw.rpc(method, fields, expect));
  }

  /** Writes a method frame without waiting for a reply, in call order. */
  #send(method: number, fields: object): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({
        kind: 'send',
        fail: reject,
        run: () => {
          try {
            this.#raw.sendImmediately(method, fields);
            resolve();
          } catch (err) {
            reject(this.#mapError(err));
          }
        },
      });
    });
  }

  /**
   * One AMQP method: an RPC resolving with the reply's fields, or with `nowait` the same
   * method written with the nowait bit, resolving (with null) once written. Every declare,
   * bind, unbind and delete of this channel goes through here.
   */
  #call(method: number, expect: number, fields: object, nowait = false): Promise<unknown> {
    if (nowait) return this.#send(method, Object.assign({}, fields, { nowait: true })).then(() => null);
    return this.#method(method, Object.assign({}, fields, { nowait: false }), expect);
  }

  /**
   * exchange.declare. Integer arguments go out as signed 32-bit when they fit.
   *
   * @example
   * ```ts
   * await ch.declareExchange({ exchange: 'celeryresults', type: 'direct', durable: true });
   * ```
   */
  async declareExchange(params: AMQP.ExchangeDeclareParams): Promise<void> {
    const fields = {
      exchange: params.exchange,
      type: params.type,
      passive: params.passive ?? false,
      durable: params.durable ?? true,
      autoDelete: params.autoDelete ?? false,
      internal: params.internal ?? false,
      arguments: typeTable(params.arguments),
    };
    await this.#call(M.ExchangeDeclare, M.ExchangeDeclareOk, fields, params.nowait);
  }

  /**
   * exchange.delete.
   *
   * @example
   * ```ts
   * await ch.deleteExchange({ exchange: 'x', ifUnused: true });
   * ```
   */
  async deleteExchange(params: AMQP.ExchangeDeleteParams): Promise<void> {
    const fields = { exchange: params.exchange, ifUnused: params.ifUnused ?? false };
    await this.#call(M.ExchangeDelete, M.ExchangeDeleteOk, fields, params.nowait);
  }

  /**
   * exchange.bind (a RabbitMQ extension): route from `source` to `destination`.
   *
   * @example
   * ```ts
   * await ch.bindExchange({ destination: 'dest', source: 'src', routingKey: 'key' });
   * ```
   */
  async bindExchange(params: AMQP.ExchangeBindParams): Promise<void> {
    await this.#call(M.ExchangeBind, M.ExchangeBindOk, bindingFields(params), params.nowait);
  }

  /**
   * exchange.unbind.
   *
   * @example
   * ```ts
   * await ch.unbindExchange({ destination: 'dest', source: 'src', routingKey: 'key' });
   * ```
   */
  async unbindExchange(params: AMQP.ExchangeUnbindParams): Promise<void> {
    await this.#call(M.ExchangeUnbind, M.ExchangeUnbindOk, bindingFields(params), params.nowait);
  }

  /**
   * queue.declare. Resolves with the declare-ok, or `null` with `nowait`.
   *
   * @example
   * ```ts
   * await ch.declareQueue({ queue: id, durable: true, autoDelete: true, arguments: { 'x-expires': 86400000 } });
   * ```
   */
  async declareQueue(params: AMQP.QueueDeclareParams): Promise<AMQP.QueueDeclareOk | null> {
    const fields = {
      queue: params.queue,
      passive: params.passive ?? false,
      durable: params.durable ?? false,
      exclusive: params.exclusive ?? false,
      autoDelete: params.autoDelete ?? false,
      arguments: typeTable(params.arguments),
    };
    const ok = await this.#call(M.QueueDeclare, M.QueueDeclareOk, fields, params.nowait);
    if (ok === null) return null;
    return {
      queue: replyString(ok, 'queue'),
      messageCount: replyNumber(ok, 'messageCount'),
      consumerCount: replyNumber(ok, 'consumerCount'),
    };
  }

  /**
   * queue.bind.
   *
   * @example
   * ```ts
   * await ch.bindQueue({ queue: q, exchange: 'celeryresults', routingKey: q, nowait: true });
   * ```
   */
  async bindQueue(params: AMQP.QueueBindParams): Promise<void> {
    await this.#call(M.QueueBind, M.QueueBindOk, bindingFields(params), params.nowait);
  }

  /**
   * queue.unbind (no nowait form exists in AMQP 0-9-1).
   *
   * @example
   * ```ts
   * await ch.unbindQueue({ queue: q, exchange: 'celeryresults', routingKey: q });
   * ```
   */
  async unbindQueue(params: AMQP.QueueUnbindParams): Promise<void> {
    await this.#call(M.QueueUnbind, M.QueueUnbindOk, bindingFields(params));
  }

  /**
   * queue.purge. Resolves with the number of messages purged.
   *
   * @example
   * ```ts
   * const n = await ch.purgeQueue({ queue: q });
   * ```
   */
  async purgeQueue(params: AMQP.QueuePurgeParams): Promise<number> {
    const ok = await this.#call(M.QueuePurge, M.QueuePurgeOk, { queue: params.queue });
    return replyNumber(ok, 'messageCount');
  }

  /**
   * queue.delete. Resolves with the number of messages deleted with the queue.
   *
   * @example
   * ```ts
   * await ch.deleteQueue({ queue: q, ifEmpty: true });
   * ```
   */
  async deleteQueue(params: AMQP.QueueDeleteParams): Promise<number> {
    const fields = {
      queue: params.queue,
      ifUnused: params.ifUnused ?? false,
      ifEmpty: params.ifEmpty ?? false,
    };
    const ok = await this.#call(M.QueueDelete, M.QueueDeleteOk, fields);
    return replyNumber(ok, 'messageCount');
  }

  /**
   * basic.publish. Without confirms it resolves once written to amqplib's buffer; on a
   * confirm channel it resolves on the broker's ack and rejects with `PUBLISH_NACKED` on a
   * nack, or with the channel's or connection's close error when that comes first.
   *
   * @example
   * ```ts
   * await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('{}'), mandatory: true });
   * ```
   */
  publish(params: AMQP.BasicPublishParams): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({
        kind: 'publish',
        fail: reject,
        run: () => {
          let written: boolean;
          try {
            const { exchange, routingKey, body } = params;
            const options = toPublishOptions(params.properties ?? {}, params.mandatory ?? false);
            const confirming = this.#confirming;
            if (confirming !== undefined) {
              written = confirming.publish(exchange, routingKey, body, options, (err) => {
                if (err === null || err === undefined) resolve();
                else this.#confirmFailed(err, reject);
              });
            } else {
              written = this.#ch.publish(exchange, routingKey, body, options);
              resolve();
            }
          } catch (err) {
            reject(this.#mapError(err));
            return;
          }
          if (!written) this.#draining = true;
        },
      });
    });
  }

  #confirmFailed(err: unknown, reject: (err: Error) => void): void {
    if (err instanceof Error && err.message === 'message nacked') {
      reject(new ChannelError('the broker nacked the message', { code: 'PUBLISH_NACKED', cause: err }));
      return;
    }
    // amqplib fails unconfirmed publishes from the channel's 'close' handler, before the
    // connection's reason is known; decide once this synchronous close has finished.
    queueMicrotask(() => reject(this.#closeError()));
  }

  /**
   * basic.get: the next message, or `null` when the queue is empty.
   *
   * @example
   * ```ts
   * const delivery = await ch.get({ queue: q });
   * if (delivery) ch.ack({ deliveryTag: delivery.fields.deliveryTag });
   * ```
   */
  async get(params: AMQP.BasicGetParams): Promise<AMQP.Delivery | null> {
    const message = await this.#rpc(() => this.#ch.get(params.queue, { noAck: params.noAck ?? false }));
    return message === false ? null : toDelivery(message);
  }

  /**
   * basic.consume: resolves with the consumer tag once consume-ok arrives. While
   * `flow(false)` is in effect, deliveries are held and dispatched on `flow(true)`.
   *
   * @example
   * ```ts
   * const tag = await ch.consume({ queue: q }, (d) => ch.ack({ deliveryTag: d.fields.deliveryTag }));
   * ```
   */
  async consume(
    params: AMQP.BasicConsumeParams,
    onDelivery: (delivery: AMQP.Delivery) => void,
  ): Promise<string> {
    const onMessage = this.#callbackFor(onDelivery);
    const options = {
      noAck: params.noAck ?? false,
      exclusive: params.exclusive ?? false,
      arguments: typeTable(params.arguments),
      ...(params.consumerTag === undefined ? {} : { consumerTag: params.consumerTag }),
    };
    const ok = await this.#rpc(() => this.#ch.consume(params.queue, onMessage, options));
    return ok.consumerTag;
  }

  /**
   * amqplib's callback for a delivery handler: one per handler, shared by every consumer
   * that uses it (getMany's 100,000 consumers hold one closure, not 100,000).
   */
  #callbackFor(onDelivery: (delivery: AMQP.Delivery) => void): (message: ConsumeMessage | null) => void {
    let onMessage = this.#callbacks.get(onDelivery);
    if (onMessage === undefined) {
      onMessage = (message: ConsumeMessage | null): void => {
        // null is amqplib's signal of a broker-side cancel, reported by the 'cancel' event.
        if (message === null) return;
        const delivery = toDelivery(message);
        if (this.#paused) this.#held.push(() => onDelivery(delivery));
        else dispatch(() => onDelivery(delivery));
      };
      this.#callbacks.set(onDelivery, onMessage);
    }
    return onMessage;
  }

  /**
   * basic.cancel.
   *
   * @example
   * ```ts
   * await ch.cancel({ consumerTag: tag });
   * ```
   */
  async cancel(params: AMQP.BasicCancelParams): Promise<void> {
    await this.#rpc(() => this.#ch.cancel(params.consumerTag));
  }

  /** Queues a fire-and-forget frame (ack/reject); throws when the channel is closed. */
  #sendSync(method: number, fields: object): void {
    if (this.#closed || this.#closing) throw this.#closeError();
    // A failure here means the channel closed first; that is reported by 'close'.
    this.#send(method, fields).catch(() => undefined);
  }

  /**
   * basic.ack.
   *
   * @throws ChannelError `CHANNEL_CLOSED` (or the close reason) when the channel is closed.
   * @example
   * ```ts
   * ch.ack({ deliveryTag: delivery.fields.deliveryTag });
   * ```
   */
  ack(params: AMQP.BasicAckParams): void {
    this.#sendSync(M.BasicAck, { deliveryTag: params.deliveryTag, multiple: params.multiple ?? false });
  }

  /**
   * basic.reject: drop (`requeue` false) or requeue one message.
   *
   * @throws ChannelError `CHANNEL_CLOSED` (or the close reason) when the channel is closed.
   * @example
   * ```ts
   * ch.reject({ deliveryTag: delivery.fields.deliveryTag, requeue: true });
   * ```
   */
  reject(params: AMQP.BasicRejectParams): void {
    this.#sendSync(M.BasicReject, { deliveryTag: params.deliveryTag, requeue: params.requeue });
  }

  /**
   * basic.qos. RabbitMQ ignores `prefetchSize` other than 0 (it rejects non-zero with 540).
   *
   * @example
   * ```ts
   * await ch.qos({ prefetchCount: 10 });
   * ```
   */
  async qos(params: AMQP.BasicQosParams): Promise<void> {
    const fields = {
      prefetchSize: params.prefetchSize ?? 0,
      prefetchCount: params.prefetchCount ?? 0,
      global: params.global ?? false,
    };
    await this.#method(M.BasicQos, fields, M.BasicQosOk);
  }

  /**
   * basic.recover: redeliver unacked messages.
   *
   * @example
   * ```ts
   * await ch.recover({ requeue: true });
   * ```
   */
  async recover(params: AMQP.BasicRecoverParams): Promise<void> {
    await this.#method(M.BasicRecover, { requeue: params.requeue ?? false }, M.BasicRecoverOk);
  }

  /**
   * Emulated channel.flow (RabbitMQ refuses it from clients): `false` holds deliveries,
   * `true` dispatches the held ones in order and resumes. Ordered with other operations.
   *
   * @example
   * ```ts
   * await ch.flow({ active: false }); // ... await ch.flow({ active: true });
   * ```
   */
  flow(params: AMQP.ChannelFlowParams): Promise<void> {
    const active = params.active;
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({
        kind: 'send',
        fail: reject,
        run: () => {
          this.#paused = !active;
          while (active && this.#held.length > 0 && !this.#paused) dispatch(this.#held.shift()!);
          resolve();
        },
      });
    });
  }

  /**
   * Closes the channel after every operation called before it. Idempotent.
   *
   * @example
   * ```ts
   * await ch.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed || this.#closing) return;
    try {
      // Our 'close' ends the wait too: amqplib's close() never settles when the connection
      // goes before the close-ok (see closeUntilClosed).
      await closeUntilClosed(this, () => {
        const closing = this.#rpc(() => this.#ch.close());
        // Set after queueing the close itself: later calls now fail fast with CHANNEL_CLOSED.
        this.#closing = true;
        return closing;
      });
    } catch (err) {
      // Closed underneath us (broker or connection): the channel is closed either way.
      if (!this.#closed) throw err;
    }
  }
}

/**
 * The fields of queue.bind/unbind or exchange.bind/unbind: the params carry the AMQP field
 * names already; the routing key defaults to '' and arguments are typed as py-amqp types
 * them. (`nowait` is set by the caller's method call.)
 */
function bindingFields(params: AMQP.QueueUnbindParams | AMQP.ExchangeUnbindParams): object {
  const { routingKey = '', arguments: args, ...ends } = params;
  return Object.assign({}, ends, { routingKey, arguments: typeTable(args) });
}
