/**
 * markAsFailure / markAsStarted behave alike on the amqp:// and rpc:// backends, on memory://
 * and RabbitMQ: the traceback defaults to the error's stack (an explicit null stores none),
 * and markAsStarted takes the request (correlation_id; on rpc:// also the reply_to).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { rpcPair } from './rpc-pair.js';
import { transports } from './transports.js';

describe.each(transports)('markAs* on $name', (t) => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('AMQPBackend: stack as traceback unless one or null is given; markAsStarted carries the correlation_id', async () => {
    const b = new AMQPBackend({
      connection: t.url,
      exchange: `mark-as-${randomUUID().slice(0, 8)}`,
      persistent: false,
      expires: 10_000,
    });
    cleanup.push(() => b.close());
    const [a, c, d, e] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const err = new RangeError('out of range');
    await b.markAsFailure(a, err);
    await b.markAsFailure(c, err, { traceback: null });
    await b.markAsFailure(e, err, { traceback: 'Traceback (most recent call last): ...' });
    const failed = await b.waitFor(a, { timeout: 5000 });
    expect(failed.result).toEqual({
      exc_type: 'ValueError',
      exc_message: ['out of range'],
      exc_module: 'builtins',
    });
    expect(failed.traceback).toBe(err.stack);
    expect((await b.waitFor(c, { timeout: 5000 })).traceback).toBeNull();
    expect((await b.waitFor(e, { timeout: 5000 })).traceback).toBe('Traceback (most recent call last): ...');
    await b.markAsStarted(d, { pid: 1 }, { correlation_id: 'corr-started' });
    const ch = await b.connection.channel();
    const m = await ch.get({ queue: b.rkey(d), noAck: true });
    await ch.close();
    expect(m?.properties.correlationId).toBe('corr-started');
    expect((m?.payload as { status?: unknown } | undefined)?.status).toBe('STARTED');
  });

  it('RPCBackend: the same traceback rule (null stores none), markAsStarted replies to the request', async () => {
    const { client, worker } = await rpcPair(t.url, cleanup);
    const [a, c, d] = [randomUUID(), randomUUID(), randomUUID()];
    const request = (id: string): { id: string; reply_to: string; correlation_id: string } => ({
      id,
      reply_to: client.oid,
      correlation_id: id,
    });
    const err = new RangeError('out of range');
    await worker.markAsFailure(a, err, { request: request(a) });
    await worker.markAsFailure(c, err, { request: request(c), traceback: null });
    expect((await client.waitFor(a, { timeout: 5000 })).traceback).toBe(err.stack);
    expect((await client.waitFor(c, { timeout: 5000 })).traceback).toBeNull();
    await worker.markAsStarted(d, { pid: 2 }, request(d));
    await expect.poll(async () => (await client.getTaskMeta(d)).status, { timeout: 5000 }).toBe('STARTED');
  });
});
