/**
 * A connection to the embedded broker: owns channels and exclusive queues, and closes like
 * a RabbitMQ connection (cleanly by us, or as lost when the broker forces it).
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { ConnectionError } from '../../errors.js';
import type {
  TransportChannelOptions,
  TransportChannel,
  TransportConnection,
  TransportConnectionEvents,
} from '../types.js';
import type { BrokerConnection, MemoryBroker } from './broker.js';
import { MemoryChannel } from './memory-channel.js';
import type { ChannelOwner } from './memory-channel.js';
import type { MemoryQueue } from './memory-queue.js';
import type { VirtualHost } from './virtual-host.js';

/** RabbitMQ's default channel_max. */
const CHANNEL_MAX = 2047;

/**
 * One open connection to a {@link MemoryBroker} virtual host.
 *
 * @example
 * ```ts
 * const conn = await new MemoryTransport().connect(parseBrokerUrl('memory://')[0]!);
 * const ch = await conn.createChannel({ confirm: true });
 * await conn.close();
 * ```
 */
export class MemoryConnection
  extends EventEmitter<TransportConnectionEvents>
  implements TransportConnection, BrokerConnection, ChannelOwner
{
  readonly id: number;
  readonly displayUrl: string;
  readonly vhost: VirtualHost;
  private readonly broker: MemoryBroker;
  private readonly channels = new Map<number, MemoryChannel>();
  private nextChannelId = 1;
  private isClosed = false;
  private closeError: ConnectionError | undefined;

  constructor(broker: MemoryBroker, id: number, vhost: VirtualHost, displayUrl: string) {
    super();
    this.broker = broker;
    this.id = id;
    this.vhost = vhost;
    this.displayUrl = displayUrl;
  }

  /** True once closed, by us or by the broker. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Opens a channel; rejects with a ConnectionError once the connection is closed. */
  createChannel(options: TransportChannelOptions = {}): Promise<TransportChannel> {
    if (this.isClosed) {
      return Promise.reject(
        this.closeError ?? new ConnectionError(`connection to ${this.displayUrl} is closed`),
      );
    }
    let id = this.nextChannelId;
    // Reuse freed numbers like a real client once the counter runs past channel_max.
    for (let tries = 0; this.channels.has(id) || id > CHANNEL_MAX; tries++) {
      if (tries > CHANNEL_MAX) {
        return Promise.reject(
          new ConnectionError('no free channel ids', { code: 'NOT_ALLOWED', recoverable: false }),
        );
      }
      id = id >= CHANNEL_MAX ? 1 : id + 1;
    }
    this.nextChannelId = id + 1;
    const channel = new MemoryChannel(this, id, options);
    this.channels.set(id, channel);
    return Promise.resolve(channel);
  }

  /** Closes every channel (requeueing their unacked messages), then the connection. */
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.isClosed = true;
    for (const channel of [...this.channels.values()]) channel.shutdown(undefined, true);
    this.broker.detach(this.id);
    this.emit('close');
    return Promise.resolve();
  }

  /** @internal The broker (or a connection-level error) closes the connection as lost. */
  forceClose(error: ConnectionError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError = error;
    for (const channel of [...this.channels.values()]) channel.shutdown(error);
    this.broker.detach(this.id);
    // After the channels' 'close' events, which are queued as microtasks too.
    queueMicrotask(() => this.emit('close', error));
  }

  /** @internal A channel hit a connection-level error. */
  failConnection(error: ConnectionError): void {
    this.forceClose(error);
  }

  /** @internal */
  channelClosed(channel: MemoryChannel): void {
    if (this.channels.get(channel.id) === channel) this.channels.delete(channel.id);
  }

  /** @internal */
  schedule(queue: MemoryQueue): void {
    this.broker.schedule(queue);
  }
}
