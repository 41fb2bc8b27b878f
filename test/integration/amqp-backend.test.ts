/**
 * AMQPBackend against RabbitMQ and the Python peer (Celery 4.4's AMQPBackend): declaration
 * equivalence, typed 406s that leave the backend working, and concurrent stores.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import { ChannelError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { BROKER_URL, newTaskId, uid } from '../fixture.js';
import { assertPythonPeers, runPeer } from '../interop/python.js';

const rk = (id: string): string => id.replaceAll('-', '');

describe('AMQPBackend on RabbitMQ with the Python peer', () => {
  const backends: AMQPBackend[] = [];
  const queues = new Set<string>();
  const exchanges = new Set<string>();
  let admin: Connection;

  beforeAll(async () => {
    await assertPythonPeers();
    admin = new Connection(BROKER_URL, { heartbeat: 0 });
  });
  afterAll(async () => {
    await admin.close();
  });
  afterEach(async () => {
    for (const b of backends.splice(0)) await b.close();
    const ch = await admin.channel();
    for (const q of queues) await ch.deleteQueue({ queue: q }).catch(() => undefined);
    for (const e of exchanges) await ch.deleteExchange({ exchange: e }).catch(() => undefined);
    queues.clear();
    exchanges.clear();
    await ch.close().catch(() => undefined);
  });

  function backend(options: AMQPBackendOptions = {}): AMQPBackend {
    const b = new AMQPBackend({ connection: BROKER_URL, ...options });
    backends.push(b);
    return b;
  }
  /** A fresh task id whose queue is deleted after the test. */
  function trackedId(): string {
    const id = newTaskId();
    queues.add(rk(id));
    return id;
  }
  async function peerDeclare(id: string, flags: string[] = []): Promise<void> {
    const r = await runPeer(['declare', id, '--broker', BROKER_URL, ...flags]);
    expect(r.code, r.stderr).toBe(0);
  }

  it('declares exactly what Celery declares: store and get on a queue the peer declared', async () => {
    const b = backend();
    const id = trackedId();
    await peerDeclare(id);
    await b.storeResult(id, 1, 'SUCCESS');
    expect((await b.getTaskMeta(id)).result).toBe(1);
    const got = await runPeer(['get', id, '--broker', BROKER_URL]);
    expect(got.lines[0]).toMatchObject({ status: 'SUCCESS', result: 1 });
  });

  it('matches the peer with transient results and no expiry', async () => {
    const exchange = uid('results');
    exchanges.add(exchange);
    const b = backend({ exchange, persistent: false, expires: null });
    const id = trackedId();
    await peerDeclare(id, ['--exchange', exchange, '--transient', '--no-expires']);
    await b.storeResult(id, 'x', 'SUCCESS');
    expect((await b.waitFor(id, { timeout: 5000 })).result).toBe('x');
  });

  it.each([
    ['durable', ['--transient']],
    ['auto_delete', ['--no-auto-delete']],
    ['x-expires', ['--expires', '60']],
  ])('a flipped %s gives a typed 406 and the backend keeps working', async (_what, flags) => {
    const exchange = uid('results');
    exchanges.add(exchange);
    const b = backend({ exchange, persistent: !flags.includes('--transient') });
    const peerFlags = flags.includes('--transient')
      ? ['--exchange', exchange]
      : ['--exchange', exchange, ...flags];
    const bad = trackedId();
    // For durable: the peer is transient and so is our exchange; our queue differs instead.
    if (flags.includes('--transient')) {
      const b2 = backend({ exchange, persistent: false });
      await b2.storeResult(trackedId(), 0, 'SUCCESS'); // exchange now exists non-durable
      const b3 = backends.pop() as AMQPBackend;
      await b3.close();
      await peerDeclare(bad, ['--exchange', exchange, '--transient']);
      // Durable queue over a non-durable one, same (non-durable) exchange.
      const mixed = backend({ exchange, persistent: false, autoDelete: false });
      const err = await mixed.storeResult(bad, 1, 'SUCCESS').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChannelError);
      expect((err as ChannelError).code).toBe('PRECONDITION_FAILED');
      const ok = trackedId();
      await mixed.storeResult(ok, 2, 'SUCCESS');
      expect((await mixed.getTaskMeta(ok)).result).toBe(2);
      return;
    }
    await peerDeclare(bad, peerFlags);
    const err = await b.storeResult(bad, 1, 'SUCCESS').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelError);
    expect((err as ChannelError).code).toBe('PRECONDITION_FAILED');
    await expect(b.getTaskMeta(bad)).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' });
    const ok = trackedId();
    await b.storeResult(ok, 2, 'SUCCESS');
    expect((await b.getTaskMeta(ok)).result).toBe(2);
    expect((await b.waitFor(ok, { timeout: 5000 })).result).toBe(2);
  });

  it('one refused store among concurrent ones fails alone', async () => {
    const exchange = uid('results');
    exchanges.add(exchange);
    const b = backend({ exchange, storeChannels: 2 });
    const bad = trackedId();
    await peerDeclare(bad, ['--exchange', exchange, '--no-auto-delete']);
    const good = Array.from({ length: 100 }, () => trackedId());
    const all = [...good.slice(0, 50), bad, ...good.slice(50)];
    const settled = await Promise.allSettled(all.map((id, i) => b.storeResult(id, i, 'SUCCESS')));
    const rejected = settled.flatMap((s, i) => (s.status === 'rejected' ? [all[i]] : []));
    expect(rejected).toEqual([bad]);
    expect(settled[50]).toMatchObject({ status: 'rejected', reason: { code: 'PRECONDITION_FAILED' } });
    const ch = await admin.channel();
    // At least once: a store whose confirm was lost with the closed channel is published
    // again, so a duplicate of the same state may be queued (the fast-forward hides it).
    for (const id of good) {
      expect((await ch.declareQueue({ queue: rk(id), passive: true }))?.messageCount).toBeGreaterThanOrEqual(
        1,
      );
    }
    await ch.close();
  });

  it('1,000 concurrent storeResult calls all arrive', async () => {
    const b = backend();
    const ids = Array.from({ length: 1000 }, () => trackedId());
    await Promise.all(ids.map((id, i) => b.storeResult(id, i, 'SUCCESS')));
    const seen = new Map<string, unknown>();
    for await (const [id, meta] of b.getMany(ids, { timeout: 60_000 })) seen.set(id, meta.result);
    expect(seen.size).toBe(1000);
    ids.forEach((id, i) => expect(seen.get(id)).toBe(i));
  });
});
