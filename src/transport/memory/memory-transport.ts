/**
 * The `memory://` transport: connections to the in-process {@link MemoryBroker}.
 *
 * @module
 */
import { AbortError } from '../../errors.js';
import type { BrokerAddress, ConnectOptions, Transport, TransportConnection } from '../types.js';
import { MemoryBroker } from './broker.js';
import { MemoryConnection } from './memory-connection.js';

/**
 * Opens connections to the embedded broker named by the address's hostname (`memory://`
 * is `localhost`), on the address's vhost. Never fails for want of a server.
 *
 * @example
 * ```ts
 * const [{ transport, address }] = resolveBroker('memory://');
 * const conn = await transport.connect(address);
 * ```
 */
export class MemoryTransport implements Transport {
  /** Always `'memory'`. */
  readonly name: string = 'memory';

  /** Connects; rejects only with an AbortError when `options.signal` is already aborted. */
  connect(address: BrokerAddress, options: ConnectOptions = {}): Promise<TransportConnection> {
    if (options.signal?.aborted === true) return Promise.reject(new AbortError());
    const broker = MemoryBroker.get(address.hostname === '' ? 'localhost' : address.hostname);
    const vhost = broker.vhost(address.vhost === '' ? '/' : address.vhost);
    const display = `memory://${address.hostname}/${encodeURIComponent(vhost.name)}`;
    const connection = broker.attach((id) => new MemoryConnection(broker, id, vhost, display));
    return Promise.resolve(connection);
  }
}
