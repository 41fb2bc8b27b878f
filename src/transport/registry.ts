/**
 * The transport registry, as kombu's transport aliases: a URL scheme names the Transport that
 * serves it. `amqp` and `amqps` (with kombu's aliases `pyamqp` and `librabbitmq`) and
 * `memory` register here like any other; {@link registerTransport} plugs in more, and URL
 * parsing accepts every registered scheme.
 *
 * @module
 */
import { ArgumentError } from '../errors.js';
import { MemoryTransport } from './memory/memory-transport.js';
import type { BrokerAddress, Transport } from './types.js';

/**
 * Makes the Transport of a scheme; called once, when an address of the scheme is first used.
 *
 * @example
 * ```ts
 * const factory: TransportFactory = () => new MyTransport();
 * ```
 */
export type TransportFactory = () => Transport;

/** Options of {@link registerTransport}. */
export interface RegisterTransportOptions {
  /** The port of a URL of this scheme that names none. @default 0 (no socket) */
  defaultPort?: number;
}

/** What a scheme resolves to. Aliases share their target's entry. */
interface Registration {
  /** The protocol addresses of the scheme carry (an alias gives its target's). */
  readonly protocol: string;
  readonly defaultPort: number;
  transport(): Transport;
}

const SCHEME_RE = /^[a-z][a-z0-9+.-]*$/;
const registrations = new Map<string, Registration>();

/** A registration whose factory runs once, on first use. */
function registration(protocol: string, factory: TransportFactory, defaultPort: number): Registration {
  let made: Transport | undefined;
  return {
    protocol,
    defaultPort,
    transport: () => (made ??= factory()),
  };
}

/**
 * Registers the Transport serving a URL scheme (kombu's `TRANSPORT_ALIASES`), replacing any
 * earlier registration of it. With a string instead of a factory, `scheme` becomes an alias
 * of that registered scheme: its URLs parse to addresses of the target's protocol.
 *
 * @param scheme - The URL scheme, case-insensitive (`[a-z][a-z0-9+.-]*`).
 * @param target - The factory of the transport, or the scheme this one is an alias of.
 * @param options - `defaultPort` of the scheme's URLs (ignored for an alias). @default { defaultPort: 0 }
 * @returns A function that restores what the scheme meant before (for tests and plugins
 *   that unload).
 * @throws ArgumentError (INVALID_ARGUMENT) for a malformed scheme or an alias of an
 *   unregistered one.
 * @example
 * ```ts
 * registerTransport('mybroker', () => new MyTransport(), { defaultPort: 7000 });
 * registerTransport('amqp+legacy', 'amqp');
 * new Connection('mybroker://host//');
 * ```
 */
export function registerTransport(
  scheme: string,
  target: TransportFactory | string,
  options: RegisterTransportOptions = {},
): () => void {
  const key = scheme.toLowerCase();
  if (!SCHEME_RE.test(key)) {
    throw new ArgumentError(`invalid transport scheme ${JSON.stringify(scheme)}`);
  }
  let entry: Registration;
  if (typeof target === 'string') {
    const aliased = registrations.get(target.toLowerCase());
    if (aliased === undefined) {
      throw new ArgumentError(`cannot alias ${key} to the unregistered scheme ${JSON.stringify(target)}`);
    }
    entry = aliased;
  } else {
    entry = registration(key, target, options.defaultPort ?? 0);
  }
  const previous = registrations.get(key);
  registrations.set(key, entry);
  return () => {
    if (registrations.get(key) !== entry) return;
    if (previous === undefined) registrations.delete(key);
    else registrations.set(key, previous);
  };
}

/**
 * What a URL scheme stands for: the protocol its addresses carry and its default port, or
 * undefined when no transport is registered for it. Used by the URL parser.
 *
 * @example
 * ```ts
 * schemeInfo('pyamqp'); // { protocol: 'amqp', defaultPort: 5672 }
 * ```
 */
export function schemeInfo(scheme: string): { protocol: string; defaultPort: number } | undefined {
  const entry = registrations.get(scheme.toLowerCase());
  return entry === undefined ? undefined : { protocol: entry.protocol, defaultPort: entry.defaultPort };
}

/**
 * The registered schemes, aliases included, in registration order.
 *
 * @example
 * ```ts
 * registeredSchemes(); // ['amqp', 'amqps', 'pyamqp', 'librabbitmq', 'memory']
 * ```
 */
export function registeredSchemes(): string[] {
  return [...registrations.keys()];
}

/**
 * The transport that serves an address's protocol.
 *
 * @throws ArgumentError (INVALID_URL) when no transport is registered for it.
 * @example
 * ```ts
 * const t = transportFor(parseBrokerUrl('memory://')[0]!); // MemoryTransport
 * ```
 */
export function transportFor(address: Pick<BrokerAddress, 'protocol'>): Transport {
  const entry = registrations.get(address.protocol);
  if (entry === undefined) {
    throw new ArgumentError(`unsupported broker protocol ${JSON.stringify(address.protocol)}`, {
      code: 'INVALID_URL',
    });
  }
  return entry.transport();
}

/**
 * The amqp transport, loaded on its first connect: the import is dynamic so that the URL
 * parser can consult this registry without a module cycle (the amqp transport formats URLs),
 * and an application on `memory://` alone never loads amqplib.
 */
const amqpTransport: Transport = {
  name: 'amqp',
  connect: (address, options) =>
    import('./amqp/amqp-transport.js').then((m) => m.amqpTransport.connect(address, options)),
};

registerTransport('amqp', () => amqpTransport, { defaultPort: 5672 });
registerTransport('amqps', () => amqpTransport, { defaultPort: 5671 });
// kombu's names for its AMQP transports, found in existing Celery configurations.
registerTransport('pyamqp', 'amqp');
registerTransport('librabbitmq', 'amqp');
registerTransport('memory', () => new MemoryTransport());

/** The embedded broker's handle (inspection, `disconnectAll()` to simulate a lost connection). */
export { MemoryBroker } from './memory/broker.js';
export type { MemoryExchangeInfo, MemoryQueueInfo } from './memory/broker.js';
export type { VirtualHostSettings } from './memory/virtual-host.js';
