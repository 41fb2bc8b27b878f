/**
 * Transport conformance: the same test bodies run on the embedded broker and on a real
 * RabbitMQ. Where the two disagree, RabbitMQ is right and the embedded broker is fixed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CeleryAmqpError, ChannelError } from '../../src/errors.js';
import type { Delivery, ReturnedMessage, TransportChannel } from '../../src/transport/types.js';
import { waitUntil } from '../fixture.js';
import { conformanceFixture, text } from './conformance-fixture.js';
import { transports } from './transports.js';

describe.each(transports)('transport conformance: $name', (t) => {
  const f = conformanceFixture(t);
  afterEach(() => f.cleanup());
  const { defer, uid, connect, channel, queue, exchange, drain, closeError, messageCount, exists } = f;

  describe('routing', () => {
    it('the default exchange routes by queue name and cannot be declared, bound or deleted', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('default'));
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('one') });
      await ch.publish({ exchange: '', routingKey: uid('nowhere'), body: Buffer.from('lost') });
      expect(await drain(ch, q)).toEqual(['one']);
      await expect(ch.declareExchange({ exchange: '', type: 'direct' })).rejects.toMatchObject({
        code: 'ACCESS_REFUSED',
      });
      const ch2 = await channel();
      await expect(ch2.bindQueue({ queue: q, exchange: '', routingKey: q })).rejects.toMatchObject({
        code: 'ACCESS_REFUSED',
      });
      const ch3 = await channel();
      await expect(ch3.deleteExchange({ exchange: '' })).rejects.toMatchObject({ code: 'ACCESS_REFUSED' });
    });

    it('direct exchanges route on the exact key', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('direct'), 'direct');
      const a = await queue(ch, uid('a'));
      const b = await queue(ch, uid('b'));
      await ch.bindQueue({ queue: a, exchange: x, routingKey: 'red' });
      await ch.bindQueue({ queue: b, exchange: x, routingKey: 'green' });
      await ch.bindQueue({ queue: b, exchange: x, routingKey: 'red' });
      for (const key of ['red', 'green', 'blue'])
        await ch.publish({ exchange: x, routingKey: key, body: Buffer.from(key) });
      expect(await drain(ch, a)).toEqual(['red']);
      expect(await drain(ch, b)).toEqual(['red', 'green']);
    });

    it('topic exchanges: * is one word, # zero or more', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('topic'), 'topic');
      const patterns = ['a.*', 'a.#', '#', '*.b', 'a.*.c', '#.c', 'a.#.c'];
      const queues = new Map<string, string>();
      for (const p of patterns) {
        const q = await queue(ch, uid('topic-q'));
        await ch.bindQueue({ queue: q, exchange: x, routingKey: p });
        queues.set(p, q);
      }
      const keys = ['a', 'a.b', 'a.b.c', 'x.b', 'a.c', 'c', 'a.x.y.c', ''];
      for (const key of keys)
        await ch.publish({ exchange: x, routingKey: key, body: Buffer.from(key === '' ? '(empty)' : key) });
      const got: Record<string, string[]> = {};
      for (const [p, q] of queues) got[p] = await drain(ch, q);
      expect(got).toEqual({
        'a.*': ['a.b', 'a.c'],
        'a.#': ['a', 'a.b', 'a.b.c', 'a.c', 'a.x.y.c'],
        '#': ['a', 'a.b', 'a.b.c', 'x.b', 'a.c', 'c', 'a.x.y.c', '(empty)'],
        '*.b': ['a.b', 'x.b'],
        'a.*.c': ['a.b.c'],
        '#.c': ['a.b.c', 'a.c', 'c', 'a.x.y.c'],
        'a.#.c': ['a.b.c', 'a.c', 'a.x.y.c'],
      });
    });

    it('fanout exchanges ignore the routing key', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('fanout'), 'fanout');
      const a = await queue(ch, uid('a'));
      const b = await queue(ch, uid('b'));
      await ch.bindQueue({ queue: a, exchange: x, routingKey: '' });
      await ch.bindQueue({ queue: b, exchange: x, routingKey: 'ignored' });
      await ch.publish({ exchange: x, routingKey: 'anything', body: Buffer.from('m') });
      expect(await drain(ch, a)).toEqual(['m']);
      expect(await drain(ch, b)).toEqual(['m']);
    });

    it('headers exchanges match all (default) or any, ignoring x- arguments', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('headers'), 'headers');
      const all = await queue(ch, uid('all'));
      const any = await queue(ch, uid('any'));
      await ch.bindQueue({
        queue: all,
        exchange: x,
        routingKey: '',
        arguments: { color: 'red', size: 'big', 'x-note': 'ignored' },
      });
      await ch.bindQueue({
        queue: any,
        exchange: x,
        routingKey: '',
        arguments: { 'x-match': 'any', color: 'red', size: 'big' },
      });
      const send = (body: string, headers: Record<string, unknown>) =>
        ch.publish({ exchange: x, routingKey: 'k', body: Buffer.from(body), properties: { headers } });
      await send('both', { color: 'red', size: 'big' });
      await send('color', { color: 'red' });
      await send('none', { color: 'blue' });
      await send('extra', { color: 'red', size: 'big', shape: 'round' });
      expect(await drain(ch, all)).toEqual(['both', 'extra']);
      expect(await drain(ch, any)).toEqual(['both', 'color', 'extra']);
    });

    it('exchange-to-exchange bindings deliver each message to a queue once, even through a loop', async () => {
      const ch = await channel();
      const x1 = await exchange(ch, uid('e2e1'), 'fanout');
      const x2 = await exchange(ch, uid('e2e2'), 'fanout');
      const x3 = await exchange(ch, uid('e2e3'), 'direct');
      await ch.bindExchange({ destination: x2, source: x1, routingKey: '' });
      await ch.bindExchange({ destination: x1, source: x2, routingKey: '' });
      await ch.bindExchange({ destination: x3, source: x1, routingKey: '' });
      const q = await queue(ch, uid('e2e-q'));
      await ch.bindQueue({ queue: q, exchange: x1, routingKey: '' });
      await ch.bindQueue({ queue: q, exchange: x2, routingKey: '' });
      await ch.bindQueue({ queue: q, exchange: x3, routingKey: 'k' });
      const other = await queue(ch, uid('e2e-other'));
      await ch.bindQueue({ queue: other, exchange: x3, routingKey: 'k' });
      await ch.publish({ exchange: x2, routingKey: 'k', body: Buffer.from('once') });
      expect(await drain(ch, q)).toEqual(['once']);
      expect(await drain(ch, other)).toEqual(['once']);
      await ch.unbindExchange({ destination: x3, source: x1, routingKey: '' });
      await ch.publish({ exchange: x1, routingKey: 'k', body: Buffer.from('again') });
      expect(await drain(ch, other)).toEqual([]);
    });

    it('an auto-delete exchange goes when its last binding goes', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('autodel-x'), 'direct', { autoDelete: true });
      const q = await queue(ch, uid('autodel-q'));
      await ch.bindQueue({ queue: q, exchange: x, routingKey: 'a' });
      await ch.bindQueue({ queue: q, exchange: x, routingKey: 'b' });
      await ch.unbindQueue({ queue: q, exchange: x, routingKey: 'a' });
      expect(await exists('exchange', x)).toBe(true);
      await ch.unbindQueue({ queue: q, exchange: x, routingKey: 'b' });
      await waitUntil(async () => !(await exists('exchange', x)));
    });

    it('an unroutable mandatory message comes back with 312 NO_ROUTE', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('mandatory'), 'direct');
      const returned = new Promise<ReturnedMessage>((resolve) => ch.once('return', resolve));
      await ch.publish({
        exchange: x,
        routingKey: 'nobody',
        body: Buffer.from('back'),
        properties: { messageId: 'm1' },
        mandatory: true,
      });
      const r = await returned;
      expect(r).toMatchObject({ replyCode: 312, replyText: 'NO_ROUTE', exchange: x, routingKey: 'nobody' });
      expect(r.body.toString()).toBe('back');
      expect(r.properties.messageId).toBe('m1');
    });

    it('publish copies the body: the publisher may reuse its buffer', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('copy'));
      const buf = Buffer.from('original');
      await ch.publish({
        exchange: '',
        routingKey: q,
        body: buf,
        properties: { contentType: 'text/plain', headers: { a: 'b' } },
      });
      buf.write('mutated!');
      const d = await ch.get({ queue: q, noAck: true });
      expect(text(d)).toBe('original');
      expect(d?.properties.contentType).toBe('text/plain');
      expect(d?.properties.headers).toMatchObject({ a: 'b' });
    });
  });

  describe('declarations', () => {
    it('redeclaring an exchange with other settings fails with 406 and closes the channel', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('equiv-x'), 'direct', { durable: true });
      await ch.declareExchange({ exchange: x, type: 'direct', durable: true });
      const closed = closeError(ch);
      const err = await ch
        .declareExchange({ exchange: x, type: 'direct', durable: false })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChannelError);
      expect(err).toMatchObject({ code: 'PRECONDITION_FAILED' });
      expect((err as Error).message).toContain(
        `inequivalent arg 'durable' for exchange '${x}' in vhost '/': received 'false' but current is 'true'`,
      );
      expect(await closed).toMatchObject({ code: 'PRECONDITION_FAILED' });
      expect(ch.closed).toBe(true);
      await expect(ch.declareQueue({ queue: uid('after') })).rejects.toBeInstanceOf(CeleryAmqpError);
      const ch2 = await channel();
      await expect(ch2.declareExchange({ exchange: x, type: 'fanout', durable: true })).rejects.toThrow(
        /inequivalent arg 'type'/,
      );
    });

    it('passive declares and operations on missing entities give 404 NOT_FOUND', async () => {
      const missing = uid('missing');
      const ops: Array<(ch: TransportChannel) => Promise<unknown>> = [
        (ch) => ch.declareExchange({ exchange: missing, type: 'direct', passive: true }),
        (ch) => ch.declareQueue({ queue: missing, passive: true }),
        (ch) => ch.get({ queue: missing }),
        (ch) => ch.consume({ queue: missing }, () => {}),
        (ch) => ch.purgeQueue({ queue: missing }),
        (ch) => ch.bindQueue({ queue: missing, exchange: 'amq.direct', routingKey: 'k' }),
      ];
      for (const op of ops) {
        const ch = await channel();
        const err = await op(ch).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ChannelError);
        expect(err).toMatchObject({ code: 'NOT_FOUND' });
      }
      const ch = await channel();
      const q = await queue(ch, uid('bind-missing-x'));
      await expect(ch.bindQueue({ queue: q, exchange: missing, routingKey: 'k' })).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
    });

    it('redeclaring a queue with other settings or arguments fails with 406', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('equiv-q'), { durable: false, arguments: { 'x-expires': 60_000 } });
      const ok = await ch.declareQueue({ queue: q, durable: false, arguments: { 'x-expires': 60_000 } });
      expect(ok).toMatchObject({ queue: q, messageCount: 0, consumerCount: 0 });
      await expect(
        ch.declareQueue({ queue: q, durable: true, arguments: { 'x-expires': 60_000 } }),
      ).rejects.toThrow(/inequivalent arg 'durable'/);
      const ch2 = await channel();
      const err = await ch2
        .declareQueue({ queue: q, arguments: { 'x-expires': 30_000 } })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'PRECONDITION_FAILED' });
      expect((err as Error).message).toContain("inequivalent arg 'x-expires'");
      const ch3 = await channel();
      await expect(
        ch3.declareQueue({ queue: q, autoDelete: true, arguments: { 'x-expires': 60_000 } }),
      ).rejects.toThrow(/inequivalent arg 'auto_delete'/);
    });

    it('server-named queues get an amq.gen- name', async () => {
      const ch = await channel();
      const ok = await ch.declareQueue({ queue: '', exclusive: true });
      expect(ok?.queue).toMatch(/^amq\.gen-/);
      defer((c) => c.deleteQueue({ queue: ok!.queue }));
      await ch.publish({ exchange: '', routingKey: ok!.queue, body: Buffer.from('x') });
      expect(await drain(ch, ok!.queue)).toEqual(['x']);
    });

    it('purge and delete return message counts; ifEmpty and ifUnused are enforced', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('counts'));
      for (let i = 0; i < 3; i++)
        await ch.publish({ exchange: '', routingKey: q, body: Buffer.from(String(i)) });
      // declare-ok counts may lag publishes on RabbitMQ; purge-ok counts do not.
      await waitUntil(async () => (await messageCount(ch, q)) === 3);
      expect(await ch.purgeQueue({ queue: q })).toBe(3);
      expect(await ch.purgeQueue({ queue: q })).toBe(0);
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('a') });
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('b') });
      await expect(ch.deleteQueue({ queue: q, ifEmpty: true })).rejects.toMatchObject({
        code: 'PRECONDITION_FAILED',
      });
      const ch2 = await channel();
      const tag = await ch2.consume({ queue: q }, () => {});
      const ch3 = await channel();
      await expect(ch3.deleteQueue({ queue: q, ifUnused: true })).rejects.toMatchObject({
        code: 'PRECONDITION_FAILED',
      });
      await ch2.cancel({ consumerTag: tag });
      // The consumer took both messages without acking; cancelling leaves them unacked on ch2.
      await ch2.close();
      const ch4 = await channel();
      expect(await ch4.deleteQueue({ queue: q })).toBe(2);
      expect(await exists('queue', q)).toBe(false);
    });

    it('exchange delete ifUnused refuses an exchange with bindings', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('ifunused'), 'direct');
      const q = await queue(ch, uid('ifunused-q'));
      await ch.bindQueue({ queue: q, exchange: x, routingKey: 'k' });
      await expect(ch.deleteExchange({ exchange: x, ifUnused: true })).rejects.toMatchObject({
        code: 'PRECONDITION_FAILED',
      });
      const ch2 = await channel();
      await ch2.unbindQueue({ queue: q, exchange: x, routingKey: 'k' });
      await ch2.deleteExchange({ exchange: x, ifUnused: true });
      expect(await exists('exchange', x)).toBe(false);
    });

    it('a nowait declare that fails closes the channel asynchronously', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('nowait'), 'direct', { durable: true });
      const closed = closeError(ch);
      await expect(
        ch.declareExchange({ exchange: x, type: 'topic', durable: true, nowait: true }),
      ).resolves.toBeUndefined();
      expect(await closed).toMatchObject({ code: 'PRECONDITION_FAILED' });
      const ch2 = await channel();
      const q = uid('nowait-q');
      await expect(ch2.declareQueue({ queue: q, nowait: true })).resolves.toBeNull();
      defer((c) => c.deleteQueue({ queue: q }));
      await ch2.publish({ exchange: '', routingKey: q, body: Buffer.from('after nowait') });
      expect(await drain(ch2, q)).toEqual(['after nowait']);
    });
  });

  describe('edge rules', () => {
    it('the amq. prefix is reserved for new exchanges and queues', async () => {
      const ch = await channel();
      await expect(ch.declareExchange({ exchange: `amq.${uid('x')}`, type: 'direct' })).rejects.toMatchObject(
        {
          code: 'ACCESS_REFUSED',
        },
      );
      const ch2 = await channel();
      await expect(ch2.declareQueue({ queue: `amq.${uid('q')}` })).rejects.toMatchObject({
        code: 'ACCESS_REFUSED',
      });
      const ch3 = await channel();
      await ch3.declareExchange({ exchange: 'amq.direct', type: 'direct', durable: true });
      await ch3.declareExchange({ exchange: 'amq.topic', type: 'topic', passive: true });
    });

    it('redeclaring a server-named queue by name is refused, a passive declare is not', async () => {
      const ch = await channel();
      const ok = await ch.declareQueue({ queue: '', exclusive: true });
      const name = ok!.queue;
      defer((c) => c.deleteQueue({ queue: name }));
      await expect(ch.declareQueue({ queue: name, passive: true })).resolves.toMatchObject({ queue: name });
      await expect(ch.declareQueue({ queue: name, exclusive: true })).rejects.toMatchObject({
        code: 'ACCESS_REFUSED',
      });
    });

    it('deleting what does not exist succeeds; unbinding what is not bound succeeds', async () => {
      const ch = await channel();
      expect(await ch.deleteQueue({ queue: uid('never') })).toBe(0);
      await ch.deleteExchange({ exchange: uid('never') });
      const x = await exchange(ch, uid('unbind'), 'direct');
      const q = await queue(ch, uid('unbind-q'));
      await ch.unbindQueue({ queue: q, exchange: x, routingKey: 'not-bound' });
      await ch.bindQueue({ queue: q, exchange: x, routingKey: 'k' });
      await ch.bindQueue({ queue: q, exchange: x, routingKey: 'k' });
      await ch.unbindQueue({ queue: q, exchange: x, routingKey: 'k' });
      await ch.publish({ exchange: x, routingKey: 'k', body: Buffer.from('x') });
      expect(await drain(ch, q)).toEqual([]);
    });

    it('invalid x-expires and x-message-ttl values fail with 406', async () => {
      const ch = await channel();
      await expect(
        ch.declareQueue({ queue: uid('bad'), arguments: { 'x-expires': 0 } }),
      ).rejects.toMatchObject({
        code: 'PRECONDITION_FAILED',
      });
      const ch2 = await channel();
      await expect(
        ch2.declareQueue({ queue: uid('bad'), arguments: { 'x-message-ttl': -1 } }),
      ).rejects.toMatchObject({
        code: 'PRECONDITION_FAILED',
      });
    });

    it('publishing to an internal exchange is refused with 403', async () => {
      const ch = await channel();
      const x = await exchange(ch, uid('internal'), 'fanout', { internal: true });
      const closed = closeError(ch);
      await ch.publish({ exchange: x, routingKey: '', body: Buffer.from('x') });
      expect(await closed).toMatchObject({ code: 'ACCESS_REFUSED' });
    });

    it("'' names the queue this channel declared last", async () => {
      const ch = await channel();
      const q = await queue(ch, uid('last'));
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('x') });
      expect(text(await ch.get({ queue: '', noAck: true }))).toBe('x');
      const ch2 = await channel();
      await expect(ch2.get({ queue: '' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('a TTL of 0 drops a message nobody is waiting for', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('ttl0'), { arguments: { 'x-message-ttl': 0 } });
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('gone') });
      expect(await ch.get({ queue: q, noAck: true })).toBeNull();
      const got: Delivery[] = [];
      await ch.consume({ queue: q, noAck: true }, (d) => got.push(d));
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('taken') });
      await waitUntil(() => got.length === 1);
      expect(text(got[0]!)).toBe('taken');
    });

    it('an exclusive queue redeclared without exclusive by its owner is locked', async () => {
      const conn = await connect();
      const ch = await channel(conn);
      const q = await queue(ch, uid('excl-redeclare'), { exclusive: true });
      await expect(ch.declareQueue({ queue: q })).rejects.toMatchObject({ code: 'RESOURCE_LOCKED' });
    });
  });

  describe('publishing', () => {
    it('publishing to a missing exchange resolves, then closes the channel with 404', async () => {
      const ch = await channel();
      const closed = closeError(ch);
      await ch.publish({ exchange: uid('no-such-x'), routingKey: 'k', body: Buffer.from('x') });
      const err = await closed;
      expect(err).toBeInstanceOf(ChannelError);
      expect(err).toMatchObject({ code: 'NOT_FOUND' });
      await expect(ch.declareQueue({ queue: uid('after') })).rejects.toBeInstanceOf(CeleryAmqpError);
    });

    it('confirm channels resolve publish once the broker has the message', async () => {
      const conn = await connect();
      const ch = await channel(conn, { confirm: true });
      expect(ch.confirm).toBe(true);
      const q = await queue(ch, uid('confirm'));
      await Promise.all(
        [1, 2, 3].map((i) => ch.publish({ exchange: '', routingKey: q, body: Buffer.from(String(i)) })),
      );
      const other = await channel(conn);
      await waitUntil(async () => (await messageCount(other, q)) === 3);
      const closed = closeError(ch);
      await expect(
        ch.publish({ exchange: uid('no-such-x'), routingKey: 'k', body: Buffer.from('x') }),
      ).rejects.toBeInstanceOf(CeleryAmqpError);
      expect(await closed).toMatchObject({ code: 'NOT_FOUND' });
    });
  });

  describe('get, ack, reject', () => {
    it('basic.get reports the remaining count; reject with requeue redelivers at the head', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('get'));
      for (const s of ['a', 'b', 'c'])
        await ch.publish({ exchange: '', routingKey: q, body: Buffer.from(s) });
      const first = await ch.get({ queue: q });
      expect(text(first)).toBe('a');
      expect(first?.fields).toMatchObject({
        redelivered: false,
        messageCount: 2,
        exchange: '',
        routingKey: q,
      });
      ch.reject({ deliveryTag: first!.fields.deliveryTag, requeue: true });
      const again = await ch.get({ queue: q });
      expect(text(again)).toBe('a');
      expect(again?.fields.redelivered).toBe(true);
      ch.reject({ deliveryTag: again!.fields.deliveryTag, requeue: false });
      const b = await ch.get({ queue: q });
      const c = await ch.get({ queue: q });
      expect([text(b), text(c)]).toEqual(['b', 'c']);
      expect(c?.fields.messageCount).toBe(0);
      expect(await messageCount(ch, q)).toBe(0);
      ch.ack({ deliveryTag: c!.fields.deliveryTag, multiple: true });
      expect(await ch.get({ queue: q })).toBeNull();
      await ch.close();
      // Acked and dropped messages do not come back when the channel closes.
      const ch2 = await channel();
      expect(await drain(ch2, q)).toEqual([]);
    });

    it('acking an unknown delivery tag closes the channel with 406', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('badtag'));
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('x') });
      const d = await ch.get({ queue: q });
      const closed = closeError(ch);
      ch.ack({ deliveryTag: d!.fields.deliveryTag });
      ch.ack({ deliveryTag: d!.fields.deliveryTag });
      expect(await closed).toMatchObject({ code: 'PRECONDITION_FAILED' });
      const ch2 = await channel();
      expect(await messageCount(ch2, q)).toBe(0);
    });

    it('closing a channel requeues its unacked messages as redelivered', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('requeue'));
      for (const s of ['a', 'b']) await ch.publish({ exchange: '', routingKey: q, body: Buffer.from(s) });
      const got: Delivery[] = [];
      await ch.consume({ queue: q }, (d) => got.push(d));
      await waitUntil(() => got.length === 2);
      expect(got.map((d) => d.fields.redelivered)).toEqual([false, false]);
      await ch.close();
      const ch2 = await channel();
      const a = await ch2.get({ queue: q, noAck: true });
      const b = await ch2.get({ queue: q, noAck: true });
      expect([text(a), text(b)]).toEqual(['a', 'b']);
      expect([a?.fields.redelivered, b?.fields.redelivered]).toEqual([true, true]);
    });

    it('recover(true) requeues unacked messages', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('recover'));
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('r') });
      const d = await ch.get({ queue: q });
      expect(d?.fields.redelivered).toBe(false);
      await ch.recover({ requeue: true });
      const again = await ch.get({ queue: q, noAck: true });
      expect(text(again)).toBe('r');
      expect(again?.fields.redelivered).toBe(true);
    });
  });

  describe('consumers', () => {
    it('consumers on one queue are served round-robin', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('rr'));
      const seen: Record<string, string[]> = {};
      const tags: string[] = [];
      for (let i = 0; i < 2; i++) {
        const tag = await ch.consume({ queue: q, noAck: true }, (d) =>
          (seen[d.fields.consumerTag!] ??= []).push(d.body.toString()),
        );
        tags.push(tag);
      }
      for (let i = 0; i < 4; i++)
        await ch.publish({ exchange: '', routingKey: q, body: Buffer.from(String(i)) });
      await waitUntil(() => Object.values(seen).flat().length === 4);
      expect(tags.map((tag) => seen[tag]?.length)).toEqual([2, 2]);
    });

    it('prefetch limits unacked deliveries per consumer', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('prefetch'));
      for (let i = 0; i < 5; i++)
        await ch.publish({ exchange: '', routingKey: q, body: Buffer.from(String(i)) });
      await ch.qos({ prefetchSize: 0, prefetchCount: 2 });
      const got: Delivery[] = [];
      await ch.consume({ queue: q }, (d) => got.push(d));
      await waitUntil(() => got.length === 2);
      const other = await channel();
      await waitUntil(async () => (await messageCount(other, q)) === 3);
      expect(got.length).toBe(2);
      ch.ack({ deliveryTag: got[0]!.fields.deliveryTag });
      await waitUntil(() => got.length === 3);
      expect(await messageCount(other, q)).toBe(2);
      ch.ack({ deliveryTag: got[2]!.fields.deliveryTag, multiple: true });
      await waitUntil(() => got.length === 5);
      expect(got.map(text)).toEqual(['0', '1', '2', '3', '4']);
    });

    it('a global prefetch limits the channel across consumers', async () => {
      const ch = await channel();
      const q1 = await queue(ch, uid('global1'));
      const q2 = await queue(ch, uid('global2'));
      for (let i = 0; i < 5; i++) {
        await ch.publish({ exchange: '', routingKey: q1, body: Buffer.from(String(i)) });
        await ch.publish({ exchange: '', routingKey: q2, body: Buffer.from(String(i)) });
      }
      await ch.qos({ prefetchSize: 0, prefetchCount: 3, global: true });
      const got: Delivery[] = [];
      await ch.consume({ queue: q1 }, (d) => got.push(d));
      await ch.consume({ queue: q2 }, (d) => got.push(d));
      await waitUntil(() => got.length === 3);
      const other = await channel();
      await waitUntil(async () => (await messageCount(other, q1)) + (await messageCount(other, q2)) === 7);
      expect(got.length).toBe(3);
    });

    it('after cancel a consumer gets nothing more', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('cancel'));
      const got: Delivery[] = [];
      const tag = await ch.consume({ queue: q, noAck: true }, (d) => got.push(d));
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('1') });
      await waitUntil(() => got.length === 1);
      await ch.cancel({ consumerTag: tag });
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('2') });
      expect(text(await ch.get({ queue: q, noAck: true }))).toBe('2');
      expect(got.length).toBe(1);
    });

    it('an exclusive consumer keeps others out with 403', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('exclusive-consumer'));
      await ch.consume({ queue: q, exclusive: true, noAck: true }, () => {});
      const ch2 = await channel();
      await expect(ch2.consume({ queue: q }, () => {})).rejects.toMatchObject({ code: 'ACCESS_REFUSED' });
    });

    it('an auto-delete queue goes when its last consumer cancels, not before', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('autodelete'), { autoDelete: true });
      expect(await exists('queue', q)).toBe(true);
      const t1 = await ch.consume({ queue: q, noAck: true }, () => {});
      const t2 = await ch.consume({ queue: q, noAck: true }, () => {});
      await ch.cancel({ consumerTag: t1 });
      expect(await exists('queue', q)).toBe(true);
      await ch.cancel({ consumerTag: t2 });
      await waitUntil(async () => !(await exists('queue', q)));
    });
  });

  describe('expiry', () => {
    it('x-expires deletes a queue left unused', async () => {
      const ch = await channel();
      const q = await queue(ch, uid('x-expires'), { arguments: { 'x-expires': 200 } });
      // Polling with a passive declare renews the lease, so poll less often than it lasts.
      await waitUntil(async () => !(await exists('queue', q)), { timeout: 15_000, interval: 600 });
    });

    it('x-message-ttl and the expiration property drop stale messages', async () => {
      const ch = await channel();
      const ttl = await queue(ch, uid('ttl'), { arguments: { 'x-message-ttl': 50 } });
      const plain = await queue(ch, uid('ttl-plain'));
      await ch.publish({ exchange: '', routingKey: ttl, body: Buffer.from('stale') });
      await ch.publish({
        exchange: '',
        routingKey: plain,
        body: Buffer.from('stale'),
        properties: { expiration: '50' },
      });
      await ch.publish({
        exchange: '',
        routingKey: plain,
        body: Buffer.from('kept'),
        properties: { expiration: '600000' },
      });
      // Counted without consuming: both stale messages go, by the broker's clock, while `kept` stays.
      await waitUntil(
        async () => (await messageCount(ch, ttl)) === 0 && (await messageCount(ch, plain)) === 1,
        {
          what: 'the stale messages expired',
        },
      );
      expect(await ch.get({ queue: ttl, noAck: true })).toBeNull();
      expect(await drain(ch, plain)).toEqual(['kept']);
      await ch.publish({ exchange: '', routingKey: ttl, body: Buffer.from('fresh') });
      expect(text(await ch.get({ queue: ttl, noAck: true }))).toBe('fresh');
    });
  });

  describe('exclusive queues', () => {
    it('belong to their connection: others get 405 RESOURCE_LOCKED; closing deletes them', async () => {
      const owner = await connect();
      const ch = await channel(owner);
      const q = await queue(ch, uid('exclusive'), { exclusive: true });
      await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('mine') });
      const otherConn = await connect();
      for (const op of [
        (c: TransportChannel) => c.declareQueue({ queue: q, exclusive: true }),
        (c: TransportChannel) => c.declareQueue({ queue: q, passive: true }),
        (c: TransportChannel) => c.consume({ queue: q }, () => {}),
        (c: TransportChannel) => c.get({ queue: q }),
      ]) {
        const other = await channel(otherConn);
        await expect(op(other)).rejects.toMatchObject({ code: 'RESOURCE_LOCKED' });
      }
      expect(text(await ch.get({ queue: q, noAck: true }))).toBe('mine');
      await owner.close();
      await waitUntil(async () => !(await exists('queue', q)));
    });
  });
});
