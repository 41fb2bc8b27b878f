/**
 * The only module that imports concrete transports: maps a URL scheme to its Transport.
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import { AmqpTransport } from './amqp/amqp-transport.js';
import { MemoryTransport } from './memory/memory-transport.js';
import type { BrokerAddress, Transport } from './types.js';
import { parseBrokerUrl } from './url.js';

const amqp = new AmqpTransport();
const memory = new MemoryTransport();

/**
 * The transport that serves an address's protocol.
 *
 * @example
 * ```ts
 * const t = transportFor(parseBrokerUrl('memory://')[0]!); // MemoryTransport
 * ```
 */
export function transportFor(address: Pick<BrokerAddress, 'protocol'>): Transport {
  switch (address.protocol) {
    case 'amqp':
    case 'amqps':
      return amqp;
    case 'memory':
      return memory;
    default:
      throw new ArgumentError(`unsupported broker protocol ${String(address.protocol)}`, {
        code: 'INVALID_URL',
      });
  }
}

/**
 * Parses a broker URL (or `;`-separated failover list) and pairs each address with its transport.
 *
 * @example
 * ```ts
 * const [{ transport, address }] = resolveBroker('amqp://guest:guest@127.0.0.1:5672//');
 * ```
 */
export function resolveBroker(url: string): Array<{ transport: Transport; address: BrokerAddress }> {
  return parseBrokerUrl(url).map((address) => ({ transport: transportFor(address), address }));
}

/** The embedded broker's handle (inspection, `disconnectAll()` to simulate a lost connection). */
export { MemoryBroker } from './memory/broker.js';
export type { MemoryExchangeInfo, MemoryQueueInfo } from './memory/broker.js';
