/**
 * What Exchange and Queue share: binding to a channel and the channel-or-connection rule.
 *
 * @module
 */
import { NotBoundError } from '../errors.js';
import { Channel } from './channel.js';
import type { Connection } from './connection.js';

/**
 * A channel, or a connection standing for its default channel (kombu's `maybe_channel`).
 *
 * @example
 * ```ts
 * const target: ChannelLike = connection; // uses connection.defaultChannel
 * ```
 */
export type ChannelLike = Channel | Connection;

/**
 * The channel a {@link ChannelLike} stands for.
 *
 * @example
 * ```ts
 * toChannel(connection) === connection.defaultChannel; // true
 * ```
 */
export function toChannel(target: ChannelLike): Channel {
  return target instanceof Channel ? target : target.defaultChannel;
}

/**
 * The bound channel of an entity, or a NotBoundError naming it.
 *
 * @example
 * ```ts
 * const ch = requireChannel(exchange.channel, `Exchange ${exchange.name}`);
 * ```
 */
export function requireChannel(channel: Channel | undefined, what: string): Channel {
  if (channel === undefined) {
    throw new NotBoundError(`Can't call method on ${what} not bound to a channel`);
  }
  return channel;
}
