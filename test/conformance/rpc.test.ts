/**
 * The rpc:// backend and protocol v2 task sending, Node client against Node worker, on
 * memory:// and RabbitMQ.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CeleryAmqpError, ConnectionError, TimeoutError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Celery } from '../../src/celery/app.js';
import { TaskError } from '../../src/celery/exceptions.js';
import { ResultSet } from '../../src/celery/result.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { Worker } from '../../src/celery/worker.js';
import { transports } from './transports.js';

const uid = (p: string): string => `rpc-test-${p}-${randomUUID().slice(0, 8)}`;

describe.each(transports)('rpc:// on $name', (t) => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });

  /** Deletes a task queue and its same-named exchange on a fresh connection (runs after the apps closed). */
  async function dropQueue(queue: string): Promise<void> {
    const conn = new Connection(t.url);
    try {
      const ch = await conn.channel();
      await ch.deleteQueue(queue, {}).catch(() => undefined);
      await ch.deleteExchange(queue, {}).catch(() => undefined);
    } finally {
      await conn.close();
    }
  }

  /** A client app and a worker app (separate connections) on one unique queue. */
  async function setup(tasks: Worker['tasks'] extends Map<string, infer H> ? Record<string, H> : never) {
    const queue = uid('q');
    const client = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
    const server = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
    const worker = new Worker(server, { queue, tasks });
    cleanup.push(() => dropQueue(queue));
    cleanup.push(() => client.close());
    cleanup.push(() => server.close());
    cleanup.push(() => worker.close());
    return { queue, client, server, worker };
  }

  it('sends add(2, 3) to a Node worker and gets 5', async () => {
    const { client, worker } = await setup({ add: ([a, b]) => Number(a) + Number(b) });
    await worker.start();
    const r = client.sendTask('add', [2, 3]);
    expect(await r.get({ timeout: 10_000 })).toBe(5);
    expect(r.state).toBe('SUCCESS');
    // The worker stores the result, then acks and counts: the client can see the result first.
    await vi.waitFor(() => expect(worker.processed).toBe(1));
  });

  it('rehydrates a failure as a TaskError with the traceback', async () => {
    const { client, worker } = await setup({
      boom: () => {
        throw new RangeError('too big');
      },
    });
    await worker.start();
    const r = client.sendTask('boom');
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).excType).toBe('ValueError');
    expect((err as TaskError).excArgs).toEqual(['too big']);
    expect(typeof (err as TaskError).traceback).toBe('string');
    expect(r.state).toBe('FAILURE');
  });

  it('an unregistered task fails with NotRegistered', async () => {
    const { client, worker } = await setup({});
    await worker.start();
    const r = client.sendTask('nope');
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect((err as TaskError).excType).toBe('NotRegistered');
  });

  it('buffers a result that arrives before anyone waits for it', async () => {
    const { client, worker } = await setup({ echo: ([x]) => x });
    await worker.start();
    const r = client.sendTask('echo', ['early']);
    await r.sent;
    // Wait until the reply is in the buffer without calling get/waitFor.
    const backend = client.backend as RPCBackend;
    for (let i = 0; i < 1000 && (await backend.getTaskMeta(r.id)).status !== 'SUCCESS'; i++) {
      await new Promise((res) => setTimeout(res, 5));
    }
    expect((await backend.getTaskMeta(r.id)).status).toBe('SUCCESS');
    expect(await r.get({ timeout: 10_000 })).toBe('early');
  });

  it('PROGRESS and STARTED update the state but do not resolve', async () => {
    const { client, server } = await setup({});
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    const worker = new Worker(server, {
      queue: client.conf.task_default_queue,
      trackStarted: true,
      tasks: {
        progress: async (_a, _k, ctx) => {
          await ctx.updateState('PROGRESS', { current: 1, total: 2 });
          await gate;
          return 'done';
        },
      },
    });
    cleanup.push(() => worker.close());
    await worker.start();
    const r = client.sendTask('progress');
    const seen: string[] = [];
    const backend = client.backend as RPCBackend;
    let settled = false;
    const got = r.get({ timeout: 10_000 }).finally(() => (settled = true));
    for (let i = 0; i < 2000 && (await backend.getTaskMeta(r.id)).status !== 'PROGRESS'; i++) {
      await new Promise((res) => setTimeout(res, 5));
    }
    const meta = await backend.getTaskMeta(r.id);
    seen.push(meta.status);
    expect(meta.result).toEqual({ current: 1, total: 2 });
    expect(settled).toBe(false);
    release();
    expect(await got).toBe('done');
    expect(seen).toEqual(['PROGRESS']);
  });

  it('joinNative over 100 results keeps input order', async () => {
    const { client, worker } = await setup({ add: ([a, b]) => Number(a) + Number(b) });
    await worker.start();
    const results = Array.from({ length: 100 }, (_, i) => client.sendTask('add', [i, i]));
    await Promise.all(results.map((r) => r.sent));
    const values = await new ResultSet(results, client.backend).joinNative({ timeout: 20_000 });
    expect(values).toEqual(Array.from({ length: 100 }, (_, i) => 2 * i));
    const ids = new Set<string>();
    for await (const [id, meta] of client.backend.getMany(
      results.map((r) => r.id),
      { timeout: 5000 },
    )) {
      expect(meta.status).toBe('SUCCESS');
      ids.add(id);
    }
    expect(ids.size).toBe(100);
  });

  it('waitFor times out with TimeoutError and close() rejects pending waits', async () => {
    const conn = new Connection(t.url);
    const backend = new RPCBackend({ connection: conn });
    cleanup.push(() => conn.close());
    const id = randomUUID();
    await expect(backend.waitFor(id, { timeout: 50 })).rejects.toBeInstanceOf(TimeoutError);
    const pending = backend.waitFor(id);
    const many = backend.getMany([id])[Symbol.asyncIterator]().next();
    const checks = Promise.all([
      expect(pending).rejects.toBeInstanceOf(ConnectionError),
      expect(many).rejects.toBeInstanceOf(ConnectionError),
    ]);
    await backend.close();
    await checks;
  });

  it('storeResult without reply_to publishes nothing; with it, uses correlation_id', async () => {
    const conn = new Connection(t.url);
    cleanup.push(() => conn.close());
    const client = new RPCBackend({ connection: conn });
    const worker = new RPCBackend({ connection: conn });
    cleanup.push(() => client.close());
    cleanup.push(() => worker.close());
    await client.ensureReplyQueue();
    const id = randomUUID();
    const corr = randomUUID();
    expect(await worker.storeResult(id, 1, 'SUCCESS', { request: { id } })).toBe(1);
    await worker.storeResult(id, 2, 'SUCCESS', {
      request: { id, reply_to: client.oid, correlation_id: corr },
    });
    const meta = await client.waitFor(corr, { timeout: 5000 });
    expect(meta).toMatchObject({ task_id: id, status: 'SUCCESS', result: 2, children: [] });
    expect((await client.getTaskMeta(id)).status).toBe('PENDING');
  });

  it('several waiters on one id (waitFor twice, getMany) all get the reply; a sparse body is normalized', async () => {
    const conn = new Connection(t.url);
    cleanup.push(() => conn.close());
    const client = new RPCBackend({ connection: conn });
    cleanup.push(() => client.close());
    await client.ensureReplyQueue();
    const id = randomUUID();
    const other = randomUUID();
    const a = client.waitFor(id, { timeout: 5000 });
    const b = client.waitFor(id, { timeout: 5000 });
    const many = (async () => {
      const out: string[] = [];
      for await (const [tid] of client.getMany([id, other], { timeout: 5000 })) out.push(tid);
      return out;
    })();
    // A waiter that gives up must not take the others' registration with it.
    const gone = client.waitFor(id, { timeout: 1 }).catch((e: unknown) => e);
    expect(await gone).toBeInstanceOf(TimeoutError);
    const ch = await conn.channel();
    cleanup.push(() => ch.close());
    // Not every sender writes traceback/children: those default to null.
    const publish = (tid: string): Promise<void> =>
      ch.publish(
        '',
        client.oid,
        Buffer.from(JSON.stringify({ task_id: tid, status: 'SUCCESS', result: 7 })),
        {
          contentType: 'application/json',
          contentEncoding: 'utf-8',
          correlationId: tid,
        },
      );
    await publish(id);
    await publish(other);
    for (const meta of await Promise.all([a, b])) {
      expect(meta).toEqual({ task_id: id, status: 'SUCCESS', result: 7, traceback: null, children: null });
    }
    expect((await many).sort()).toEqual([id, other].sort());
  });

  it('declares the reply queue as Celery 5 does (non-durable, auto-delete, x-expires)', async () => {
    const conn = new Connection(t.url);
    cleanup.push(() => conn.close());
    const backend = new RPCBackend({ connection: conn, settings: { result_expires: 60 } });
    cleanup.push(() => backend.close());
    await backend.ensureReplyQueue();
    expect(backend.binding.durable).toBe(false);
    expect(backend.binding.autoDelete).toBe(true);
    expect(backend.binding.queueArguments).toEqual({ 'x-expires': 60_000 });
    // A peer declaring it the same way gets no 406.
    const ch = await conn.channel();
    await ch.declareQueue(backend.oid, {
      durable: false,
      autoDelete: true,
      exclusive: false,
      passive: false,
      nowait: false,
      arguments: { 'x-expires': 60_000 },
    });
    await ch.close();
  });

  it("backend 'amqp://' uses the AMQP backend on the same broker", async () => {
    const queue = uid('q');
    cleanup.push(() => dropQueue(queue));
    const client = new Celery({ broker: t.url, backend: 'amqp://', settings: { task_default_queue: queue } });
    const server = new Celery({ broker: t.url, backend: 'amqp://', settings: { task_default_queue: queue } });
    const worker = new Worker(server, { queue, tasks: { add: ([a, b]) => Number(a) + Number(b) } });
    cleanup.push(() => client.close());
    cleanup.push(() => server.close());
    cleanup.push(() => worker.close());
    await worker.start();
    expect(await client.sendTask('add', [20, 22]).get({ timeout: 10_000 })).toBe(42);
  });

  it('a refused publish rejects sent and get()', async () => {
    const client = new Celery({ broker: t.url });
    cleanup.push(() => client.close());
    const r = client.sendTask('add', [1, 2], {}, { exchange: uid('missing-exchange'), routingKey: 'x' });
    await expect(r.sent).rejects.toBeInstanceOf(CeleryAmqpError);
    await expect(r.get({ timeout: 5000 })).rejects.toBeInstanceOf(CeleryAmqpError);
    expect(() => client.sendTask('')).toThrow(CeleryAmqpError);
  });

  it('group operations are unsupported, as in Celery', async () => {
    const backend = new RPCBackend({ connection: t.url });
    cleanup.push(() => backend.close());
    await expect(backend.saveGroup()).rejects.toBeInstanceOf(CeleryAmqpError);
    await expect(backend.restoreGroup()).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});
