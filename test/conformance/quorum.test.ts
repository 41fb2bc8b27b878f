/**
 * Quorum queues and the native delayed delivery ladder, on the embedded broker and on
 * RabbitMQ: what RabbitMQ 3.10 refuses for a quorum queue (406 texts, the 540 for a global
 * prefetch) and how a delayed message travels down the `celery_delayed_*` ladder. The ladder
 * is declared under a unique name prefix (kombu's main branch takes one), so the global
 * `celery_delayed_*` names are never touched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Exchange } from '../../src/kombu/exchange.js';
import {
  MAX_DELAY_LEVEL,
  bindQueueToNativeDelayedDelivery,
  calculateRoutingKey,
  declareNativeDelayedDelivery,
  deliveryExchangeName,
  levelName,
} from '../../src/kombu/native-delayed-delivery.js';
import { Queue } from '../../src/kombu/queue.js';
import { waitUntil } from '../fixture.js';
import { conformanceFixture } from './conformance-fixture.js';
import { transports } from './transports.js';

const QUORUM = { 'x-queue-type': 'quorum' };

describe.each(transports)('quorum queues: $name', (t) => {
  const f = conformanceFixture(t);
  afterEach(() => f.cleanup());
  const { uid, channel, queue } = f;

  it('a quorum queue is durable, never auto-delete, exclusive or prioritised (406)', async () => {
    const name = uid('qq');
    const cases: Array<[Record<string, unknown>, string]> = [
      [
        { durable: true, autoDelete: true },
        `invalid property 'auto-delete' for queue '${name}-a' in vhost '/'`,
      ],
      [
        { durable: true, exclusive: true },
        `invalid property 'exclusive-owner' for queue '${name}-b' in vhost '/'`,
      ],
      [{ durable: false }, `invalid property 'non-durable' for queue '${name}-c' in vhost '/'`],
    ];
    for (const [i, [flags, text]] of cases.entries()) {
      const ch = await channel();
      const q = `${name}-${'abc'[i]}`;
      await expect(ch.declareQueue({ queue: q, ...flags, arguments: QUORUM })).rejects.toThrow(
        `406 PRECONDITION_FAILED - ${text}`,
      );
    }
    const ch = await channel();
    await expect(
      ch.declareQueue({ queue: `${name}-d`, durable: true, arguments: { ...QUORUM, 'x-max-priority': 10 } }),
    ).rejects.toThrow(
      `invalid arg 'x-max-priority' for queue '${name}-d' in vhost '/' of queue type rabbit_quorum_queue`,
    );
  });

  it('x-queue-type must match on redeclare; none and classic are the same type', async () => {
    const ch = await channel();
    const qq = await queue(ch, uid('qq'), { durable: true, arguments: QUORUM });
    const cq = await queue(ch, uid('cq'), { durable: true });
    const refused = async (name: string, args: Record<string, unknown> | undefined): Promise<string> => {
      const c = await channel();
      const err: unknown = await c
        .declareQueue({ queue: name, durable: true, ...(args === undefined ? {} : { arguments: args }) })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'PRECONDITION_FAILED' });
      return (err as Error).message;
    };
    expect(await refused(qq, undefined)).toContain(
      `inequivalent arg 'x-queue-type' for queue '${qq}' in vhost '/': received none but current is the value 'quorum' of type 'longstr'`,
    );
    expect(await refused(qq, { 'x-queue-type': 'classic' })).toContain(
      `inequivalent arg 'x-queue-type' for queue '${qq}' in vhost '/': received 'classic' but current is 'quorum'`,
    );
    expect(await refused(cq, QUORUM)).toContain(
      `inequivalent arg 'x-queue-type' for queue '${cq}' in vhost '/': received the value 'quorum' of type 'longstr' but current is none`,
    );
    await expect(
      ch.declareQueue({ queue: cq, durable: true, arguments: { 'x-queue-type': 'classic' } }),
    ).resolves.toMatchObject({
      queue: cq,
    });
    await expect(ch.declareQueue({ queue: qq, durable: true, arguments: QUORUM })).resolves.toMatchObject({
      queue: qq,
    });
  });

  it('consuming a quorum queue under a global prefetch closes the connection (540); per consumer it works', async () => {
    const setup = await channel();
    const qq = await queue(setup, uid('qq'), { durable: true, arguments: QUORUM });
    const conn = await f.connect();
    const lost = new Promise<unknown>((resolve) => conn.once('close', resolve));
    const ch = await channel(conn);
    await ch.qos({ prefetchCount: 5, global: true });
    const err: unknown = await ch.consume({ queue: qq }, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'NOT_IMPLEMENTED', recoverable: false });
    expect((err as Error).message).toContain(`queue '${qq}' in vhost '/' does not support global qos`);
    expect(await lost).toMatchObject({ code: 'NOT_IMPLEMENTED' });
    const ok = await channel();
    await ok.qos({ prefetchCount: 5, global: false });
    await expect(ok.consume({ queue: qq }, () => undefined)).resolves.toEqual(expect.any(String));
  });
});

describe.each(transports)('native delayed delivery ladder: $name', (t) => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  /** A kombu connection, and the ladder under `prefix` deleted after the test. */
  async function ladder(prefix: string, queueType: 'classic' | 'quorum'): Promise<Connection> {
    const conn = new Connection(t.url);
    cleanups.push(() => conn.close());
    cleanups.push(async () => {
      const ch = await conn.channel();
      for (let level = 0; level <= MAX_DELAY_LEVEL; level++) {
        await ch.deleteQueue({ queue: levelName(level, prefix) });
        await ch.deleteExchange({ exchange: levelName(level, prefix) });
      }
      await ch.deleteExchange({ exchange: deliveryExchangeName(prefix) });
    });
    await declareNativeDelayedDelivery(await conn.channel(), { queueType, prefix });
    return conn;
  }

  it.each(['classic', 'quorum'] as const)(
    'a %s ladder holds a message for its delay, then routes it to the topic queue bound by #.<key>',
    async (queueType) => {
      const prefix = `conformance_${Math.random().toString(16).slice(2, 10)}`;
      const conn = await ladder(prefix, queueType);
      const ch = await conn.channel();
      const name = `${prefix}.tasks`;
      const exchange = new Exchange(name, { type: 'topic' });
      const q = new Queue(name, { exchange, routingKey: name, queueArguments: QUORUM });
      await q.bind(ch).declare();
      cleanups.push(async () => {
        const c = await conn.channel();
        await c.deleteQueue({ queue: name });
        await c.deleteExchange({ exchange: name });
      });
      expect(await bindQueueToNativeDelayedDelivery(ch, q, { prefix })).toEqual([]);
      const arrived: number[] = [];
      await q.bind(ch).consume((m) => {
        arrived.push(Date.now());
        m.ack();
      });
      const sent = Date.now();
      for (const delay of [1, 2]) {
        await ch.publish({
          exchange: levelName(MAX_DELAY_LEVEL, prefix),
          routingKey: calculateRoutingKey(delay, name),
          body: Buffer.from(String(delay)),
        });
      }
      await waitUntil(() => arrived.length === 2, { interval: 10 });
      const [first, second] = arrived.map((at) => at - sent);
      expect(first).toBeGreaterThanOrEqual(1000);
      expect(first).toBeLessThan(2000);
      expect(second).toBeGreaterThanOrEqual(2000);
      expect(second).toBeLessThan(3000);
    },
  );
});
