/**
 * What Exchange and Queue share: binding to a channel, the channel-or-connection rule, and
 * the one bind/unbind of the entity layer.
 *
 * @module
 */
import { NotBoundError } from '../errors.js';
import type { FieldTable } from '../transport/types.js';
import { Channel } from './channel.js';
import type { CallOptions } from './channel-types.js';
import type { Connection } from './connection.js';
import type { Exchange } from './exchange.js';

/** Options of `bindTo` / `unbindFrom` on an Exchange or a Queue. */
export interface BindToOptions extends CallOptions {
  /** The binding key. @default '' */
  routingKey?: string;
  /** Binding arguments (e.g. headers-exchange `x-match`). @default undefined */
  arguments?: FieldTable;
  /** Do not wait for bind-ok (binding only; unbinds always wait). @default false */
  nowait?: boolean;
}

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

/**
 * Binds (or, with `unbind`, unbinds) the queue or exchange named `destination` to the
 * exchange `source` on `channel`: what `bindTo` and `unbindFrom` of both entities run.
 *
 * @example
 * ```ts
 * await applyBinding(channel, 'queue', 'q', logs, { routingKey: 'error' }, false);
 * ```
 */
export function applyBinding(
  channel: Channel,
  kind: 'queue' | 'exchange',
  destination: string,
  source: Exchange | string,
  options: BindToOptions,
  unbind: boolean,
): Promise<void> {
  const binding = {
    routingKey: options.routingKey ?? '',
    ...(options.arguments === undefined ? {} : { arguments: options.arguments }),
  };
  const nowait = !unbind && options.nowait === true ? { nowait: true } : {};
  const sourceName = typeof source === 'string' ? source : source.name;
  if (kind === 'queue') {
    const params = { queue: destination, exchange: sourceName, ...binding };
    return unbind
      ? channel.unbindQueue(params, options)
      : channel.bindQueue({ ...params, ...nowait }, options);
  }
  const params = { destination, source: sourceName, ...binding };
  return unbind
    ? channel.unbindExchange(params, options)
    : channel.bindExchange({ ...params, ...nowait }, options);
}
