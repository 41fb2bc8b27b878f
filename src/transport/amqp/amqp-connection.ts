/**
 * An open AMQP connection over amqplib.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import type { ChannelModel } from 'amqplib';
import { ChannelError, ConnectionError, type CeleryAmqpError } from '../../errors.js';
import type { TransportChannelOptions, TransportConnection, TransportConnectionEvents } from '../types.js';
import { AmqpChannel, type ChannelHost } from './amqp-channel.js';
import { fromConnectionLoss } from './amqp-errors.js';
import { closeUntilClosed, coalesceWrites } from './amqplib-internals.js';

/**
 * A {@link TransportConnection} over an amqplib ChannelModel. Created by
 * {@link AmqpTransport.connect}.
 *
 * 'close' carries a typed error when the connection was lost rather than closed by
 * {@link close}: a broker close maps through `fromReply` (e.g. 320 CONNECTION_FORCED from
 * `rabbitmqctl close_connection`, recoverable), a dropped socket or missed heartbeats give
 * a recoverable ConnectionError `CONNECTION_CLOSED`. The same error rejects every operation
 * still pending on the connection's channels.
 *
 * @example
 * ```ts
 * const conn = await new AmqpTransport().connect(parseBrokerUrl('amqp://localhost//')[0]!);
 * conn.on('close', (err) => { if (err) console.error(err.message); });
 * const ch = await conn.createChannel({ confirm: true });
 * ```
 */
export class AmqpConnection
  extends EventEmitter<TransportConnectionEvents>
  implements TransportConnection, ChannelHost
{
  /** The URL connected to, password redacted. */
  readonly displayUrl: string;

  readonly #model: ChannelModel;
  #closing = false;
  #closed = false;
  #lostError: CeleryAmqpError | undefined;
  /** The last 'error' amqplib reported; its 'close' may come without one. */
  #lastError: unknown;

  /**
   * Wraps an open amqplib connection. Called by AmqpTransport, not by users.
   *
   * @param model - The amqplib ChannelModel `connect()` resolved with.
   * @param displayUrl - The redacted URL, for messages.
   */
  constructor(model: ChannelModel, displayUrl: string) {
    super();
    this.#model = model;
    this.displayUrl = displayUrl;
    // One socket write per tick's frames, not one per frame (see coalesceWrites).
    coalesceWrites(model);
    // Without this listener a socket error would be an uncaught 'error' event.
    model.on('error', (err: unknown) => {
      this.#lastError = err;
    });
    model.on('close', (err?: unknown) => {
      this.#closed = true;
      const cause = err ?? (this.#closing ? undefined : this.#lastError);
      if (cause !== undefined) this.#lostError = fromConnectionLoss(cause, displayUrl);
      else if (!this.#closing) {
        this.#lostError = new ConnectionError(`connection to ${displayUrl} closed unexpectedly`, {
          code: 'CONNECTION_CLOSED',
        });
      }
      if (this.#lostError === undefined) this.emit('close');
      else this.emit('close', this.#lostError);
    });
    model.on('blocked', (reason: string) => this.emit('blocked', reason));
    model.on('unblocked', () => this.emit('unblocked'));
  }

  /** True once the connection is closed or closing. */
  get closed(): boolean {
    return this.#closed || this.#closing;
  }

  /** The error the connection was lost with; undefined while open or after {@link close}. */
  get lostError(): CeleryAmqpError | undefined {
    return this.#lostError;
  }

  /**
   * Opens a channel; with `confirm: true` in publisher-confirm mode.
   *
   * @throws ConnectionError when the connection is closed.
   * @example
   * ```ts
   * const ch = await conn.createChannel();
   * ```
   */
  async createChannel(options: TransportChannelOptions = {}): Promise<AmqpChannel> {
    const confirm = options.confirm ?? false;
    if (this.closed) throw this.#closedError();
    try {
      if (!confirm) return new AmqpChannel(await this.#model.createChannel(), this);
      const channel = await this.#model.createConfirmChannel();
      return new AmqpChannel(channel, this, channel);
    } catch (err) {
      if (this.closed) throw this.#closedError();
      throw new ChannelError(`cannot open a channel on ${this.displayUrl}: ${String(err)}`, { cause: err });
    }
  }

  #closedError(): CeleryAmqpError {
    return (
      this.#lostError ??
      new ConnectionError(`connection to ${this.displayUrl} is closed`, { code: 'CONNECTION_CLOSED' })
    );
  }

  /**
   * Closes the connection (and with it every channel). Idempotent; never rejects for a
   * connection that is already gone.
   *
   * @example
   * ```ts
   * await conn.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.#closing = true;
    try {
      // The model's 'close' ends the wait too: a socket that dies after our close was
      // written never settles amqplib's close() (see closeUntilClosed).
      await closeUntilClosed(this.#model, () => this.#model.close());
    } catch {
      // Already closed underneath us (socket gone): the goal is reached either way.
    }
  }
}
