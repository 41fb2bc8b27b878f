/**
 * Dead-lettering conformance (x-dead-letter-exchange / -routing-key, x-death), on the
 * embedded broker and on RabbitMQ: the emulation is checked field by field against the real
 * broker.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery, TransportChannel } from '../../src/transport/types.js';
import { waitUntil } from '../fixture.js';
import { conformanceFixture, text } from './conformance-fixture.js';
import { transports } from './transports.js';

describe.each(transports)('transport conformance (dead-lettering): $name', (t) => {
  const f = conformanceFixture(t);
  afterEach(() => f.cleanup());
  const { uid, channel, queue, exchange, messageCount } = f;

  describe('dead-lettering', () => {
    /** basic.get, polled: RabbitMQ dead-letters asynchronously. */
    function getSoon(ch: TransportChannel, name: string, noAck = true): Promise<Delivery> {
      return waitUntil(() => ch.get({ queue: name, noAck }), { interval: 25, what: `a message on ${name}` });
    }

    /** The x-death entries without `time`, which is only checked to be an AMQP timestamp. */
    function deaths(d: Delivery): unknown[] {
      const all = d.properties.headers?.['x-death'] as Array<Record<string, unknown>>;
      for (const e of all) expect(e['time']).toEqual({ '!': 'timestamp', value: expect.any(Number) });
      return all.map(({ time: _time, ...rest }) => rest);
    }

    it('reject without requeue republishes to x-dead-letter-exchange with x-death; a repeat counts', async () => {
      const ch = await channel();
      const work = await exchange(ch, uid('dl-work'), 'direct');
      const dlx = await exchange(ch, uid('dlx'), 'direct');
      const q = await queue(ch, uid('dl-source'), { arguments: { 'x-dead-letter-exchange': dlx } });
      // The dead-letter queue dead-letters back to the source, for a second round.
      const dlq = await queue(ch, uid('dlq'), { arguments: { 'x-dead-letter-exchange': work } });
      await ch.bindQueue({ queue: q, exchange: work, routingKey: 'job' });
      await ch.bindQueue({ queue: dlq, exchange: dlx, routingKey: 'job' });
      await ch.publish({
        exchange: work,
        routingKey: 'job',
        body: Buffer.from('poison'),
        properties: { headers: { keep: 'me' } },
      });
      ch.reject({ deliveryTag: (await getSoon(ch, q, false)).fields.deliveryTag, requeue: false });
      const once = await getSoon(ch, dlq, false);
      expect([text(once), once.fields.exchange, once.fields.routingKey]).toEqual(['poison', dlx, 'job']);
      expect(once.properties.headers).toMatchObject({
        keep: 'me',
        'x-first-death-reason': 'rejected',
        'x-first-death-queue': q,
        'x-first-death-exchange': work,
      });
      const first = { count: 1, reason: 'rejected', queue: q, exchange: work, 'routing-keys': ['job'] };
      expect(deaths(once)).toEqual([first]);
      ch.reject({ deliveryTag: once.fields.deliveryTag, requeue: false });
      ch.reject({ deliveryTag: (await getSoon(ch, q, false)).fields.deliveryTag, requeue: false });
      const twice = await getSoon(ch, dlq);
      // One entry per (queue, reason): the repeat is counted and moved to the front.
      expect(deaths(twice)).toEqual([
        { ...first, count: 2 },
        { count: 1, reason: 'rejected', queue: dlq, exchange: dlx, 'routing-keys': ['job'] },
      ]);
      expect(await messageCount(ch, q)).toBe(0);
    });

    it('x-dead-letter-routing-key overrides the routing key; a missing exchange drops silently', async () => {
      const ch = await channel();
      const dlx = await exchange(ch, uid('dlx'), 'direct');
      const args = { 'x-dead-letter-exchange': dlx, 'x-dead-letter-routing-key': 'parked' };
      const q = await queue(ch, uid('dl-key'), { arguments: args });
      const dlq = await queue(ch, uid('dlq-key'));
      await ch.bindQueue({ queue: dlq, exchange: dlx, routingKey: 'parked' });
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('m') });
      ch.reject({ deliveryTag: (await getSoon(ch, q, false)).fields.deliveryTag, requeue: false });
      const dead = await getSoon(ch, dlq);
      expect(dead.fields.routingKey).toBe('parked');
      expect(deaths(dead)).toEqual([
        { count: 1, reason: 'rejected', queue: q, exchange: '', 'routing-keys': [q] },
      ]);
      const lost = await queue(ch, uid('dl-lost'), { arguments: { 'x-dead-letter-exchange': uid('none') } });
      await ch.publish({ exchange: '', routingKey: lost, body: Buffer.from('gone') });
      ch.reject({ deliveryTag: (await getSoon(ch, lost, false)).fields.deliveryTag, requeue: false });
      // A round trip on the same channel, after the reject: the channel is still open.
      expect(await messageCount(ch, lost)).toBe(0);
      expect(ch.closed).toBe(false);
      // Closing the channel would requeue a message still unacked: none comes back, it was dropped.
      await ch.close();
      expect(await messageCount(await channel(), lost)).toBe(0);
    });

    it('messages expiring through x-message-ttl or expiration are dead-lettered as expired', async () => {
      const ch = await channel();
      const dlx = await exchange(ch, uid('dlx'), 'fanout');
      const ttl = await queue(ch, uid('dl-ttl'), {
        arguments: { 'x-dead-letter-exchange': dlx, 'x-message-ttl': 30 },
      });
      const plain = await queue(ch, uid('dl-exp'), { arguments: { 'x-dead-letter-exchange': dlx } });
      const dlq = await queue(ch, uid('dlq-ttl'));
      await ch.bindQueue({ queue: dlq, exchange: dlx, routingKey: '' });
      // Nobody consumes or polls the source queues: expiry at the head is the broker's own.
      await ch.publish({ exchange: '', routingKey: ttl, body: Buffer.from('a') });
      const a = await getSoon(ch, dlq);
      expect(deaths(a)).toEqual([
        { count: 1, reason: 'expired', queue: ttl, exchange: '', 'routing-keys': [ttl] },
      ]);
      await ch.publish({
        exchange: '',
        routingKey: plain,
        body: Buffer.from('b'),
        properties: { expiration: '30' },
      });
      const b = await getSoon(ch, dlq);
      expect(b.properties.expiration).toBeUndefined();
      expect(deaths(b)).toEqual([
        {
          count: 1,
          reason: 'expired',
          queue: plain,
          exchange: '',
          'routing-keys': [plain],
          'original-expiration': '30',
        },
      ]);
    });
  });
});
