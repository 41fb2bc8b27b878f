/**
 * Types shared by the kombu entities, producer and consumer.
 *
 * @module
 */
import type { FieldTable, MessageProperties } from '../transport/types.js';
import type { Channel } from './channel.js';

/**
 * A delivery mode: 1 / `'transient'` or 2 / `'persistent'`.
 *
 * @example
 * ```ts
 * const mode: DeliveryModeLike = 'persistent'; // same as 2
 * ```
 */
export type DeliveryModeLike = 1 | 2 | 'transient' | 'persistent';

/**
 * Normalizes a delivery mode alias to its number.
 *
 * @example
 * ```ts
 * toDeliveryMode('transient'); // 1
 * ```
 */
export function toDeliveryMode(mode: DeliveryModeLike): 1 | 2 {
  return mode === 'transient' || mode === 1 ? 1 : 2;
}

/**
 * A message ready to publish: raw bytes and the properties to send (kombu's
 * `prepare_message` result). Built by `Exchange.Message()` or a Producer.
 *
 * @example
 * ```ts
 * const m: OutgoingMessage = { body: Buffer.from('hi'), properties: { contentType: 'text/plain' } };
 * ```
 */
export interface OutgoingMessage {
  body: Buffer;
  properties: MessageProperties;
}

/**
 * Something that can be declared on a channel: an Exchange, a Queue, or a Binding-like
 * entity. `cacheKey` identifies equal declarations for `maybeDeclare`'s cache.
 *
 * @example
 * ```ts
 * const e: Declarable = exchange; await e.declare();
 * ```
 */
export interface Declarable {
  /** False for entities `maybeDeclare` must always declare (auto-delete ones, NoCacheQueue). */
  readonly canCacheDeclaration: boolean;
  /** Identity of the declaration (name and attributes), for the per-connection cache. */
  readonly cacheKey: string;
  /** Declares the entity on its bound channel. */
  declare(options?: { nowait?: boolean; recover?: boolean }): Promise<unknown>;
  /** The channel it is bound to, when bound. */
  readonly channel?: Channel | undefined;
  /** A copy bound to `channel` (entities a Producer may get unbound, or bound elsewhere). */
  bind?(channel: Channel): Declarable;
}

/** Field-table arguments, `undefined` when none. */
export type Arguments = FieldTable | undefined;
