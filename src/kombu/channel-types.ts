/**
 * The types of the kombu Channel's API: its events, its one bag of call options, its
 * options, and what a recovery hook sees.
 *
 * @module
 */
import type {
  BasicConsumeParams,
  QueueBindParams,
  QueueDeclareOk,
  QueueDeclareParams,
  ReturnedMessage,
  TransportChannelOptions,
} from '../transport/types.js';
import type { MessageHandler } from './channel-consumers.js';
import type { WaitOptions } from './retry.js';

/**
 * Events of a kombu {@link Channel}. A listener that throws is reported as a
 * `CallbackError` on the connection's error path, never thrown into the transport.
 */
export interface ChannelEvents {
  /** An unroutable mandatory message came back. */
  return: [message: ReturnedMessage];
  /**
   * The broker cancelled a consumer (its queue was deleted, or went down with its node), or
   * it could not be restarted after a reconnect (then also reported as an error). A consumer
   * whose queue is still declared through this channel is brought back with the same tag once
   * the queue is declared again (the connection's 'queueLost' says when it was lost).
   */
  cancel: [consumerTag: string];
  /** The channel was closed by {@link Channel.close}. */
  close: [];
  /**
   * A server-named queue got a new name from the broker while recovering (RabbitMQ refuses
   * to redeclare an `amq.gen-*` name); consumers and bindings moved to the new name.
   */
  rename: [oldName: string, newName: string];
}

/**
 * The one bag of call options of every Channel operation (kombu's own, never sent to the
 * broker): a deadline, a signal, and whether the call survives a reconnect.
 *
 * @example
 * ```ts
 * await channel.declareQueue({ queue: name, autoDelete: true }, { recover: false, timeout: 5000 });
 * ```
 */
export interface CallOptions extends WaitOptions {
  /**
   * Declarations and bindings: remember them so that they are replayed after a reconnect (a
   * store path that declares a fresh queue before every publish passes false: it declares
   * again with the next publish anyway). Consumers: re-consume after a reconnect; with false
   * the consumer ends with its transport channel and a recovery hook must bring it back.
   * @default the channel's `recoverDeclarations` for declarations, true for consumers
   */
  recover?: boolean | undefined;
}

/**
 * The reopened channel as a {@link RecoveryHook} sees it. Its operations go straight to the
 * new transport channel (they are part of the recovery, so they cannot wait for it) and are
 * not recorded.
 */
export interface RecoveringChannel {
  /** True once this transport channel closed (a later recovery will run the hook again). */
  readonly closed: boolean;
  declareQueue(params: QueueDeclareParams): Promise<QueueDeclareOk | null>;
  bindQueue(params: QueueBindParams): Promise<void>;
  consume(params: BasicConsumeParams, handler: MessageHandler): Promise<string>;
}

/**
 * Restores broker state of its own on a reopened channel (see
 * {@link Channel.addRecoveryHook}). A rejection that is recoverable (the connection dropped
 * again) restarts the recovery; any other is reported on the connection.
 */
export type RecoveryHook = (channel: RecoveringChannel) => Promise<void>;

/** Options of {@link Channel}: the transport channel's (`confirm`), and its recovery. */
export interface ChannelOptions extends TransportChannelOptions {
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
