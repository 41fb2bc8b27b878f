/**
 * The transports the conformance suite runs on: the embedded broker and a real RabbitMQ,
 * both reached through the registry exactly as the library reaches them.
 *
 * `TEST_BROKER_URL` (test/fixture.ts) points the RabbitMQ fixture elsewhere; `off` runs the
 * suite on the embedded broker only.
 *
 * @module
 */
import { resolveBroker } from '../../src/transport/url.js';
import type { TransportConnection } from '../../src/transport/types.js';
import { BROKER_URL } from '../fixture.js';

/** One transport under test. */
export interface TransportFixture {
  /** Label shown by `describe.each`. */
  readonly name: string;
  readonly kind: 'memory' | 'amqp';
  readonly url: string;
  /** Opens a fresh connection. */
  connect(): Promise<TransportConnection>;
}

function fixture(kind: TransportFixture['kind'], url: string): TransportFixture {
  return {
    name: `${kind} (${url.replace(/:[^:@/]*@/, ':****@')})`,
    kind,
    url,
    connect: () => {
      const [first] = resolveBroker(url);
      if (first === undefined) throw new Error(`no address in ${url}`);
      return first.transport.connect(first.address, { heartbeat: 0 });
    },
  };
}

const amqpUrl = BROKER_URL;

/**
 * Every fixture the suite runs on.
 *
 * @example
 * ```ts
 * describe.each(transports)('$name', (t) => { ... });
 * ```
 */
export const transports: readonly TransportFixture[] = [
  fixture('memory', 'memory://'),
  ...(amqpUrl === 'off' ? [] : [fixture('amqp', amqpUrl)]),
];
