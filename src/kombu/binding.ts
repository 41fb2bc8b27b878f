/**
 * An extra binding of a queue (kombu's `binding`).
 *
 * @module
 */
import type { FieldTable } from '../transport/types.js';
import type { Channel } from './channel.js';
import type { CallOptions } from './channel-types.js';
import type { BindToOptions } from './entity.js';
import type { Exchange } from './exchange.js';

/** Anything a binding can be applied to: a Queue or an Exchange. */
export interface Bindable {
  bindTo(exchange: Exchange | string, options?: BindToOptions): Promise<unknown>;
  unbindFrom(exchange: Exchange | string, options?: BindToOptions): Promise<unknown>;
}

/**
 * A binding of a queue (or exchange) to an exchange with a routing key, used in
 * `Queue({ bindings: [...] })` to bind one queue to several exchanges.
 *
 * @example
 * ```ts
 * const q = new Queue('q', { bindings: [new Binding(logs, 'info'), new Binding(logs, 'warn')] });
 * await q.bind(channel).declare();
 * ```
 */
export class Binding {
  /** The exchange bound to. */
  readonly exchange: Exchange | undefined;
  /** The routing (binding) key. @default '' */
  readonly routingKey: string;
  /** Binding arguments (e.g. headers-exchange `x-match`). @default undefined */
  readonly arguments: FieldTable | undefined;
  /** Arguments for unbinding. @default undefined */
  readonly unbindArguments: FieldTable | undefined;

  constructor(exchange?: Exchange, routingKey = '', args?: FieldTable, unbindArguments?: FieldTable) {
    this.exchange = exchange;
    this.routingKey = routingKey;
    this.arguments = args;
    this.unbindArguments = unbindArguments;
  }

  /**
   * Declares the exchange of this binding on `channel` (nothing for the default exchange).
   *
   * @example
   * ```ts
   * await binding.declare(channel);
   * ```
   */
  async declare(channel: Channel, options: { nowait?: boolean } & CallOptions = {}): Promise<void> {
    if (this.exchange !== undefined && this.exchange.name !== '') {
      await this.exchange.bind(channel).declare(options);
    }
  }

  /**
   * Binds `entity` to this binding's exchange.
   *
   * @example
   * ```ts
   * await binding.bind(queue);
   * ```
   */
  async bind(entity: Bindable, options: { nowait?: boolean } & CallOptions = {}): Promise<void> {
    if (this.exchange === undefined) return;
    await entity.bindTo(this.exchange, {
      routingKey: this.routingKey,
      ...(this.arguments === undefined ? {} : { arguments: this.arguments }),
      ...(options.nowait === undefined ? {} : { nowait: options.nowait }),
      ...(options.recover === undefined ? {} : { recover: options.recover }),
    });
  }

  /**
   * Removes `entity`'s binding to this binding's exchange.
   *
   * @example
   * ```ts
   * await binding.unbind(queue);
   * ```
   */
  async unbind(entity: Bindable): Promise<void> {
    if (this.exchange === undefined) return;
    await entity.unbindFrom(this.exchange, {
      routingKey: this.routingKey,
      ...(this.unbindArguments === undefined ? {} : { arguments: this.unbindArguments }),
    });
  }
}
