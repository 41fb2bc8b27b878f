/**
 * Helpers of the transport conformance suites (transport.test.ts, dead-letter.test.ts): the
 * same bodies run on the embedded broker and on RabbitMQ, with every queue and exchange a
 * test declares deleted after it, each on a channel of its own.
 *
 * @module
 */
import { CeleryAmqpError } from '../../src/errors.js';
import type {
  TransportChannelOptions,
  Delivery,
  ExchangeDeclareParams,
  QueueDeclareParams,
  TransportChannel,
  TransportConnection,
} from '../../src/transport/types.js';
import { uid } from '../fixture.js';
import type { TransportFixture } from './transports.js';

/** A delivery's body as text. */
export function text(d: Delivery | null): string | undefined {
  return d?.body.toString();
}

/**
 * The per-transport helpers; call `cleanup` from `afterEach`.
 *
 * @example
 * ```ts
 * const f = conformanceFixture(t);
 * afterEach(() => f.cleanup());
 * const q = await f.queue(await f.channel(), f.uid('q'));
 * ```
 */
export function conformanceFixture(t: TransportFixture) {
  const connections: TransportConnection[] = [];
  const cleanups: Array<(ch: TransportChannel) => Promise<unknown>> = [];

  async function cleanup(): Promise<void> {
    const conn = await t.connect();
    conn.on('close', () => {});
    for (const undo of cleanups.splice(0).reverse()) {
      // Each cleanup on its own channel: a failure (already gone) closes only that one.
      const ch = await conn.createChannel();
      ch.on('close', () => {});
      await undo(ch).catch(() => undefined);
      if (!ch.closed) await ch.close();
    }
    await conn.close();
    for (const c of connections.splice(0)) if (!c.closed) await c.close();
  }

  async function connect(): Promise<TransportConnection> {
    const conn = await t.connect();
    conn.on('close', () => {});
    connections.push(conn);
    return conn;
  }

  async function channel(
    conn?: TransportConnection,
    options?: TransportChannelOptions,
  ): Promise<TransportChannel> {
    const ch = await (conn ?? (await connect())).createChannel(options);
    ch.on('close', () => {});
    return ch;
  }

  async function queue(
    ch: TransportChannel,
    name: string,
    options: Omit<QueueDeclareParams, 'queue'> = {},
  ): Promise<string> {
    const ok = await ch.declareQueue({ queue: name, ...options });
    const actual = ok?.queue ?? name;
    cleanups.push((c) => c.deleteQueue({ queue: actual }));
    return actual;
  }

  async function exchange(
    ch: TransportChannel,
    name: string,
    type: string,
    options: Omit<ExchangeDeclareParams, 'exchange' | 'type'> = {},
  ): Promise<string> {
    await ch.declareExchange({ exchange: name, type, durable: false, ...options });
    cleanups.push((c) => c.deleteExchange({ exchange: name }));
    return name;
  }

  /** Drains a queue with basic.get (noAck) and returns the bodies. */
  async function drain(ch: TransportChannel, name: string): Promise<string[]> {
    const out: string[] = [];
    for (
      let d = await ch.get({ queue: name, noAck: true });
      d !== null;
      d = await ch.get({ queue: name, noAck: true })
    ) {
      out.push(d.body.toString());
    }
    return out;
  }

  /** The error a channel closes with. */
  function closeError(ch: TransportChannel): Promise<Error | undefined> {
    return new Promise((resolve) => ch.once('close', resolve));
  }

  async function messageCount(ch: TransportChannel, name: string): Promise<number> {
    const ok = await ch.declareQueue({ queue: name, passive: true });
    return ok?.messageCount ?? -1;
  }

  async function exists(kind: 'queue' | 'exchange', name: string): Promise<boolean> {
    const ch = await channel();
    try {
      if (kind === 'queue') await ch.declareQueue({ queue: name, passive: true });
      else await ch.declareExchange({ exchange: name, type: 'direct', passive: true });
      await ch.close();
      return true;
    } catch (error) {
      if (error instanceof CeleryAmqpError && error.code === 'NOT_FOUND') return false;
      throw error;
    }
  }

  /** Registers an undo step, run after the test on a channel of its own. */
  function defer(undo: (ch: TransportChannel) => Promise<unknown>): void {
    cleanups.push(undo);
  }

  return { cleanup, defer, uid, connect, channel, queue, exchange, drain, closeError, messageCount, exists };
}
