import { afterEach, describe, expect, it } from 'vitest';
import { ArgumentError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Queue } from '../../src/kombu/queue.js';
import { MemoryTransport } from '../../src/transport/memory/memory-transport.js';
import { registerTransport, registeredSchemes, transportFor } from '../../src/transport/registry.js';
import type {
  BrokerAddress,
  ConnectOptions,
  Transport,
  TransportConnection,
} from '../../src/transport/types.js';
import { parseBrokerUrl, resolveBroker } from '../../src/transport/url.js';
import { uid } from '../fixture.js';

/** A third transport: the embedded broker under another name, counting its connections. */
class WrappedMemory implements Transport {
  readonly name = 'wrapped-memory';
  readonly addresses: BrokerAddress[] = [];
  readonly #inner = new MemoryTransport();
  connect(address: BrokerAddress, options?: ConnectOptions): Promise<TransportConnection> {
    this.addresses.push(address);
    return this.#inner.connect({ ...address, protocol: 'memory' }, options);
  }
}

describe('transport registry', () => {
  const undo: Array<() => void> = [];
  afterEach(() => {
    for (const u of undo.splice(0).reverse()) u();
  });

  it('registers the built-in schemes and kombu aliases through the same registry', () => {
    expect(registeredSchemes()).toEqual(
      expect.arrayContaining(['amqp', 'amqps', 'pyamqp', 'librabbitmq', 'memory']),
    );
    expect(transportFor({ protocol: 'amqp' })).toBe(transportFor({ protocol: 'amqps' }));
    expect(parseBrokerUrl('pyamqp://h//')[0]).toMatchObject({ protocol: 'amqp', port: 5672 });
    expect(transportFor({ protocol: 'memory' }).name).toBe('memory');
  });

  it('a registered third transport parses, resolves and carries messages through a Connection', async () => {
    const wrapped = new WrappedMemory();
    const scheme = 'wrapped+mem';
    undo.push(registerTransport(scheme, () => wrapped, { defaultPort: 7000 }));
    const host = uid('wrapped');
    expect(parseBrokerUrl(`${scheme}://${host}/`)[0]).toMatchObject({
      protocol: scheme,
      hostname: host,
      port: 7000,
    });
    expect(resolveBroker(`${scheme}://${host}/`)[0]?.transport).toBe(wrapped);
    const conn = new Connection(`${scheme}://${host}/`);
    try {
      expect(conn.transportName).toBe('wrapped-memory');
      const q = new Queue(uid('q'), { durable: false }).bind(conn);
      await q.declare();
      await conn.defaultChannel.publish({
        exchange: '',
        routingKey: q.name,
        body: Buffer.from('via a plugin'),
      });
      const m = await q.get({ noAck: true });
      expect(m?.body.toString()).toBe('via a plugin');
      expect(wrapped.addresses).toHaveLength(1);
    } finally {
      await conn.close();
    }
  });

  it('an alias carries its target protocol; unregistering restores what was there', () => {
    const scheme = 'my-amqp';
    const restore = registerTransport(scheme, 'amqp');
    expect(parseBrokerUrl(`${scheme}://h//`)[0]).toMatchObject({ protocol: 'amqp', port: 5672 });
    restore();
    expect(() => parseBrokerUrl(`${scheme}://h//`)).toThrow(/unsupported scheme/);
    // Replacing a built-in and restoring it.
    const plugin = new WrappedMemory();
    const back = registerTransport('memory', () => plugin);
    expect(transportFor({ protocol: 'memory' })).toBe(plugin);
    back();
    expect(transportFor({ protocol: 'memory' })).toBeInstanceOf(MemoryTransport);
  });

  it('refuses malformed schemes, aliases of unknown ones, and unknown protocols, with typed errors', () => {
    expect(() => registerTransport('1bad', () => new WrappedMemory())).toThrow(ArgumentError);
    expect(() => registerTransport('ok', 'nope')).toThrow(/unregistered scheme/);
    expect(() => transportFor({ protocol: 'nope' })).toThrow(
      expect.objectContaining({ code: 'INVALID_URL' }),
    );
    expect(() => new Connection('nope://h/')).toThrow(expect.objectContaining({ code: 'INVALID_URL' }));
  });
});
