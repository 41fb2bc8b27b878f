/**
 * A transport registered under a scheme of its own that wraps a real one (memory or amqp)
 * and records every channel method called through it, with its params: how the conformance
 * suite sees what kombu sends, on both transports, and a third transport plugged in through
 * the registry exactly as a user would.
 *
 * @module
 */
import { registerTransport, transportFor } from '../../src/transport/registry.js';
import type {
  BrokerAddress,
  TransportChannelOptions,
  ConnectOptions,
  Transport,
  TransportChannel,
  TransportConnection,
} from '../../src/transport/types.js';

/** One call seen on a channel: the method name and its first argument (the params object). */
export interface SpiedCall {
  readonly channel: number;
  readonly method: string;
  readonly params: unknown;
}

/** The channel methods recorded (the ones taking a params object). */
const SPIED = new Set([
  'declareExchange',
  'deleteExchange',
  'bindExchange',
  'unbindExchange',
  'declareQueue',
  'bindQueue',
  'unbindQueue',
  'purgeQueue',
  'deleteQueue',
  'publish',
  'get',
  'consume',
  'cancel',
  'qos',
  'recover',
  'flow',
]);

/** A spying transport and the calls it saw. */
export interface Spy {
  /** The scheme to put in URLs, e.g. `spy1-memory`. */
  readonly scheme: string;
  /** Every call, in order, across all connections and channels. */
  readonly calls: SpiedCall[];
  /** How many connections were opened through it. */
  connections: number;
  /** Unregisters the scheme. */
  unregister(): void;
}

let counter = 0;

function spyChannel(channel: TransportChannel, id: number, calls: SpiedCall[]): TransportChannel {
  return new Proxy(channel, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (typeof prop !== 'string' || !SPIED.has(prop)) return value.bind(target);
      return (...args: unknown[]): unknown => {
        calls.push({ channel: id, method: prop, params: args[0] });
        return Reflect.apply(value, target, args);
      };
    },
  });
}

function spyConnection(connection: TransportConnection, spy: Spy): TransportConnection {
  let channels = 0;
  return new Proxy(connection, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (prop !== 'createChannel') return value.bind(target);
      return async (options?: TransportChannelOptions): Promise<TransportChannel> => {
        const ch = await target.createChannel(options);
        channels += 1;
        return spyChannel(ch, channels, spy.calls);
      };
    },
  });
}

/**
 * Registers `spy<n>-<protocol>` as a transport that connects through the one registered for
 * `protocol` and records the calls.
 *
 * @example
 * ```ts
 * const spy = registerSpy('memory');
 * const conn = new Connection(`${spy.scheme}://spyhost/`);
 * ```
 */
export function registerSpy(protocol: 'memory' | 'amqp'): Spy {
  counter += 1;
  const scheme = `spy${counter}-${protocol}`;
  const spy: Spy = {
    scheme,
    calls: [],
    connections: 0,
    unregister: () => undefined,
  };
  const transport: Transport = {
    name: `spy(${protocol})`,
    async connect(address: BrokerAddress, options?: ConnectOptions): Promise<TransportConnection> {
      const real = transportFor({ protocol });
      const conn = await real.connect({ ...address, protocol }, options);
      spy.connections += 1;
      return spyConnection(conn, spy);
    },
  };
  spy.unregister = registerTransport(scheme, () => transport, {
    defaultPort: protocol === 'amqp' ? 5672 : 0,
  });
  return spy;
}

/**
 * The URL of `url` with its scheme replaced by the spy's.
 *
 * @example
 * ```ts
 * spyUrl(spy, 'amqp://guest:guest@127.0.0.1:5672//'); // 'spy2-amqp://guest:guest@127.0.0.1:5672//'
 * ```
 */
export function spyUrl(spy: Spy, url: string): string {
  return url.replace(/^[a-z][a-z0-9+.-]*:/i, `${spy.scheme}:`);
}
