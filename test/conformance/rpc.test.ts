/**
 * The rpc:// backend and protocol v2 task sending, Node client against Node worker, on
 * memory:// and RabbitMQ.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  CeleryAmqpError,
  ContentDisallowedError,
  DecodeError,
  TimeoutError,
} from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Celery } from '../../src/celery/app.js';
import { TaskError, TaskRevokedError } from '../../src/celery/exceptions.js';
import { AsyncResult, ResultSet } from '../../src/celery/result.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { parseIsoDate } from '../../src/celery/task-message.js';
import { Worker } from '../../src/celery/worker.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import type { WorkerOptions } from '../../src/celery/worker.js';
import { rpcPair } from './rpc-pair.js';
import { transports } from './transports.js';
import { newTaskId, uid, waitUntil } from '../fixture.js';

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
      await ch.deleteQueue({ queue }).catch(() => undefined);
      await ch.deleteExchange({ exchange: queue }).catch(() => undefined);
    } finally {
      await conn.close();
    }
  }

  /** Messages ready in a queue (unacked ones are not counted), asked on a fresh connection. */
  async function readyCount(queue: string): Promise<number | undefined> {
    const conn = new Connection(t.url);
    try {
      const ch = await conn.channel();
      const ok = await ch.declareQueue({ queue, passive: true });
      return ok?.messageCount;
    } finally {
      await conn.close();
    }
  }

  /** A client app and a worker app (separate connections) on one unique queue. */
  async function setup(
    tasks: NonNullable<WorkerOptions['tasks']>,
    options: Omit<WorkerOptions, 'queue' | 'tasks'> = {},
  ) {
    const queue = uid('rpc-test-q');
    const client = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
    const server = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
    const worker = new Worker(server, { ...options, queue, tasks });
    cleanup.push(() => dropQueue(queue));
    cleanup.push(() => client.close());
    cleanup.push(() => server.close());
    cleanup.push(() => worker.close());
    return { queue, client, server, worker };
  }

  it('sends add(2, 3) to a Node worker and gets 5', async () => {
    const { client, worker } = await setup({ add: ([a, b]) => Number(a) + Number(b) });
    await worker.start();
    const r = await client.sendTask('add', [2, 3]);
    expect(await r.get({ timeout: 10_000 })).toBe(5);
    expect(r.state).toBe('SUCCESS');
    // The worker stores the result, then acks and counts: the client can see the result first.
    await waitUntil(() => worker.processed === 1);
  });

  it('rehydrates a failure as a TaskError with the traceback', async () => {
    const { client, worker } = await setup({
      boom: () => {
        throw new RangeError('too big');
      },
    });
    await worker.start();
    const r = await client.sendTask('boom');
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
    const r = await client.sendTask('nope');
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect((err as TaskError).excType).toBe('NotRegistered');
  });

  it('an expired task is stored REVOKED with TaskRevokedError and acked; its handler never runs', async () => {
    const ran: string[] = [];
    // The worker's clock is an hour ahead: a 60 s expiry has passed when it receives the task,
    // while the broker's per-message TTL (60 s) keeps the message alive until then.
    const { queue, client, worker } = await setup(
      {
        never: () => ran.push('never'),
        add: ([a, b]) => Number(a) + Number(b),
      },
      { now: () => Date.now() + 3_600_000 },
    );
    await worker.start();
    const r = await client.sendTask('never', [], {}, { expires: 60 });
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskRevokedError);
    expect(err).toMatchObject({
      excType: 'TaskRevokedError',
      excModule: 'celery.exceptions',
      excArgs: ['expired'],
      state: 'REVOKED',
      traceback: null,
    });
    expect(r.state).toBe('REVOKED');
    // A task without expires still runs on that clock.
    expect(await (await client.sendTask('add', [1, 2])).get({ timeout: 10_000 })).toBe(3);
    await waitUntil(() => worker.revoked === 1);
    expect(ran).toEqual([]);
    expect(worker.counters.errors).toBe(0);
    // Acked: closing the worker gives nothing back to the queue.
    await worker.close();
    expect(await readyCount(queue)).toBe(0);
  });

  it('a held task whose expiry passes before its eta is revoked at the eta, not run', async () => {
    const ran: string[] = [];
    const { queue, client, worker } = await setup({ never: () => ran.push('never') });
    await worker.start();
    const before = Date.now();
    // Wide enough that a loaded machine still delivers the task before its expiry (it would
    // be revoked on receipt then, never held): expires 1 s, eta 2 s.
    const r = await client.sendTask('never', [], {}, { countdown: 2, expires: 1 });
    await waitUntil(() => worker.held === 1, { timeout: 5000, interval: 10 });
    const err: unknown = await r.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskRevokedError);
    expect((err as TaskRevokedError).excArgs).toEqual(['expired']);
    // Checked when the eta came (Celery's execute_using_pool -> revoked()), not before.
    expect(Date.now() - before).toBeGreaterThanOrEqual(2000);
    expect(ran).toEqual([]);
    await waitUntil(() => worker.revoked === 1);
    expect(worker.held).toBe(0);
    await worker.close();
    expect(await readyCount(queue)).toBe(0);
  });

  it('an eta task runs not before its eta; a task sent after it (prefetch 1) completes first', async () => {
    const ran = new Map<string, { at: number; eta: unknown }>();
    const { client, worker } = await setup(
      {
        stamp: ([name], _k, ctx) => {
          ran.set(String(name), { at: Date.now(), eta: ctx.message.headers['eta'] });
          return name;
        },
      },
      // One slot: only the prefetch raised for the held task lets the second one in.
      { concurrency: 1, prefetchMultiplier: 1 },
    );
    await worker.start();
    const later = await client.sendTask('stamp', ['later'], {}, { countdown: 0.8 });
    await waitUntil(() => worker.held === 1, { timeout: 5000, interval: 10 });
    const soon = await client.sendTask('stamp', ['soon']);
    const order: unknown[] = [];
    await Promise.all(
      [later, soon].map((r) => r.get({ timeout: 10_000 }).then((v: unknown) => order.push(v))),
    );
    expect(order).toEqual(['soon', 'later']);
    const l = ran.get('later');
    expect(typeof l?.eta).toBe('string');
    expect(l?.at).toBeGreaterThanOrEqual(parseIsoDate(String(l?.eta)));
    expect(ran.get('soon')?.eta).toBeNull();
    expect(worker.held).toBe(0);
    // The window is back to one after the eta: tasks still flow through it.
    expect(await (await client.sendTask('stamp', ['after'])).get({ timeout: 10_000 })).toBe('after');
    expect(worker.counters.errors).toBe(0);
  });

  it('close() cancels a held eta task without running it; a second worker gets it redelivered', async () => {
    const runs: string[] = [];
    const { queue, client, worker } = await setup({ stamp: () => runs.push('first') });
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await worker.start();
    const baseline = timers();
    const r = await client.sendTask('stamp', [], {}, { countdown: 0.5 });
    // The eta header was computed before the send resolved: it is at most this.
    const etaBound = Date.now() + 500;
    await waitUntil(() => worker.held === 1, { timeout: 5000, interval: 10 });
    await worker.close();
    expect(worker.held).toBe(0);
    // memory:// keeps no timers of its own here, so a leaked eta timer shows in the count
    // (an amqp connection's timers come and go: only the outcome below is checked there).
    if (t.kind === 'memory') expect(timers()).toBeLessThanOrEqual(baseline);
    // Past the eta: a timer left behind (due at the eta) fires before a poll timer due later.
    await waitUntil(() => Date.now() > etaBound + 5, { interval: 10, what: 'the eta to pass' });
    expect(runs).toEqual([]);
    const second = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
    const worker2 = new Worker(second, {
      queue,
      tasks: {
        stamp: () => {
          runs.push('second');
          return 'second';
        },
      },
    });
    cleanup.push(() => second.close());
    cleanup.push(() => worker2.close());
    await worker2.start();
    expect(await r.get({ timeout: 10_000 })).toBe('second');
    expect(runs).toEqual(['second']);
  });

  // memory:// only: MemoryBroker.disconnectAll() cuts every connection as a lost socket would.
  it.runIf(t.kind === 'memory')(
    'a connection lost under a held eta task drops the hold; the redelivered copy runs once, at its eta',
    async () => {
      const queue = uid('rpc-test-q');
      const fast = new Connection(t.url, {
        retryPolicy: { intervalStart: 10, intervalStep: 10, intervalMax: 50 },
      });
      const client = new Celery({ broker: t.url, settings: { task_default_queue: queue } });
      const server = new Celery({ broker: fast, settings: { task_default_queue: queue } });
      const runs: Array<{ at: number; eta: unknown }> = [];
      const worker = new Worker(server, {
        queue,
        tasks: { stamp: (_a, _k, ctx) => runs.push({ at: Date.now(), eta: ctx.message.headers['eta'] }) },
      });
      cleanup.push(() => dropQueue(queue));
      cleanup.push(() => client.close());
      cleanup.push(() => fast.close());
      cleanup.push(() => server.close());
      cleanup.push(() => worker.close());
      await worker.start();
      // ignoreResult: the cut also takes the client's auto-delete reply queue with it.
      await client.sendTask('stamp', [], {}, { countdown: 0.6, ignoreResult: true });
      await waitUntil(() => worker.held === 1, { timeout: 5000, interval: 10 });
      MemoryBroker.get('localhost').disconnectAll('test: connection lost');
      // The broker requeued the message with the channel: the old hold must go at once.
      await waitUntil(() => worker.held === 0, { timeout: 1000, interval: 1 });
      await waitUntil(() => runs.length === 1, { timeout: 5000, interval: 10 });
      // The old hold's timer was due at the same eta: any copy left would fire before a poll
      // timer due later.
      const eta = parseIsoDate(String(runs[0]?.eta));
      await waitUntil(() => Date.now() > eta + 5, { interval: 10, what: 'the eta to pass' });
      expect(runs.length).toBe(1);
      expect(runs[0]?.at).toBeGreaterThanOrEqual(parseIsoDate(String(runs[0]?.eta)));
      expect(worker.held).toBe(0);
      expect(worker.counters.errors).toBe(0);
    },
  );

  it('buffers a result that arrives before anyone waits for it', async () => {
    const { client, worker } = await setup({ echo: ([x]) => x });
    await worker.start();
    const r = await client.sendTask('echo', ['early']);
    // Wait until the reply is in the buffer without calling get/waitFor.
    const backend = client.backend as RPCBackend;
    await waitUntil(async () => (await backend.getTaskMeta(r.id)).status === 'SUCCESS', {
      interval: 5,
      what: 'the buffered reply',
    });
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
    const r = await client.sendTask('progress');
    const seen: string[] = [];
    const backend = client.backend as RPCBackend;
    let settled = false;
    const got = r.get({ timeout: 10_000 }).finally(() => (settled = true));
    const meta = await waitUntil(
      async () => {
        const m = await backend.getTaskMeta(r.id);
        return m.status === 'PROGRESS' && m;
      },
      { interval: 5, what: 'the PROGRESS state' },
    );
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
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => client.sendTask('add', [i, i])));
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

  it('storeResult without reply_to publishes nothing; with it, uses correlation_id', async () => {
    const { client, worker } = await rpcPair(t.url, cleanup);
    const id = newTaskId();
    const corr = newTaskId();
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
    const id = newTaskId();
    const other = newTaskId();
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
      ch.publish({
        exchange: '',
        routingKey: client.oid,
        body: Buffer.from(JSON.stringify({ task_id: tid, status: 'SUCCESS', result: 7 })),
        properties: {
          contentType: 'application/json',
          contentEncoding: 'utf-8',
          correlationId: tid,
        },
      });
    await publish(id);
    await publish(other);
    for (const meta of await Promise.all([a, b])) {
      expect(meta).toEqual({ task_id: id, status: 'SUCCESS', result: 7, traceback: null, children: null });
    }
    expect((await many).sort()).toEqual([id, other].sort());
  });

  it('a reply that is no result is dropped and reported: the error event, else the logger', async () => {
    const conn = new Connection(t.url);
    cleanup.push(() => conn.close());
    const logged: unknown[][] = [];
    const logger = {
      debug() {},
      info() {},
      warn() {},
      error: (...args: unknown[]) => void logged.push(args),
    };
    const client = new RPCBackend({ connection: conn, logger });
    cleanup.push(() => client.close());
    await client.ensureReplyQueue();
    const ch = await conn.channel({ confirm: true });
    cleanup.push(() => ch.close());
    const id = newTaskId();
    const garbage = (): Promise<void> =>
      ch.publish({
        exchange: '',
        routingKey: client.oid,
        body: Buffer.from('{not json'),
        properties: { contentType: 'application/json', contentEncoding: 'utf-8', correlationId: id },
      });
    // Nobody listens: the logger gets it, naming the reply queue and the correlation_id.
    await garbage();
    await waitUntil(() => logged.length === 1, { what: 'the dropped reply to be logged' });
    expect(String(logged[0]?.[0])).toMatch(
      new RegExp(`RPCBackend: Dropped a reply on ${client.oid} \\(correlation_id ${id}\\)`),
    );
    expect(logged[0]?.[1]).toBeInstanceOf(DecodeError);
    // A listener gets the event instead.
    const events: Error[] = [];
    client.on('error', (err) => events.push(err));
    await garbage();
    await waitUntil(() => events.length === 1, { what: 'the error event' });
    expect(events[0]).toBeInstanceOf(DecodeError);
    expect(logged).toHaveLength(1);
    expect(client.droppedMessages).toBe(2);
    // Kept for the id: its next poll fails with it, until a good reply replaces it.
    await expect(client.getTaskMeta(id)).rejects.toBeInstanceOf(DecodeError);
    await ch.publish({
      exchange: '',
      routingKey: client.oid,
      body: Buffer.from(JSON.stringify({ task_id: id, status: 'SUCCESS', result: 1 })),
      properties: { contentType: 'application/json', contentEncoding: 'utf-8', correlationId: id },
    });
    await waitUntil(
      () =>
        client.getTaskMeta(id).then(
          (m) => m.status === 'SUCCESS',
          () => false,
        ),
      {
        what: 'the good reply',
      },
    );
    expect((await client.waitFor(id, { timeout: 5000 })).result).toBe(1);
  });

  it('a reply that cannot be decoded rejects the waits for its id at once, and is still reported', async () => {
    const conn = new Connection(t.url);
    cleanup.push(() => conn.close());
    const client = new RPCBackend({ connection: conn });
    const reported: Error[] = [];
    client.on('error', (err) => reported.push(err));
    cleanup.push(() => client.close());
    await client.ensureReplyQueue();
    const ch = await conn.channel({ confirm: true });
    cleanup.push(() => ch.close());
    // Python: pickle.dumps({'task_id': 'x', 'status': 'SUCCESS', ...}, 2), here any pickle body.
    const pickled = Buffer.from('80027d71002e', 'hex');
    const reply = (id: string, body: Buffer, contentType: string): Promise<void> =>
      ch.publish({
        exchange: '',
        routingKey: client.oid,
        body,
        properties: { contentType, contentEncoding: 'binary', correlationId: id },
      });
    const id = newTaskId();
    // A wait in progress rejects when the reply comes (its timeout is far away).
    const waiting = client.waitFor(id, { timeout: 60_000 }).catch((e: unknown) => e);
    const many = (async () => {
      for await (const _ of client.getMany([id, newTaskId()], { timeout: 60_000 })) void _;
    })().catch((e: unknown) => e);
    await reply(id, pickled, 'application/x-python-serialize');
    const err = await waiting;
    expect(err).toBeInstanceOf(ContentDisallowedError);
    expect((err as Error).message).toBe(
      `result of task ${id}: Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)`,
    );
    expect(await many).toBe(err);
    // A wait or a poll started later rejects at once too; still reported, once.
    await expect(client.waitFor(id, { timeout: 60_000 })).rejects.toBe(err);
    await expect(client.getTaskMeta(id)).rejects.toBe(err);
    expect(reported).toHaveLength(1);
    expect(reported[0]?.message).toMatch(
      new RegExp(`Dropped a reply on ${client.oid} \\(correlation_id ${id}\\)`),
    );
    expect(client.droppedMessages).toBe(1);
    // A malformed body rejects its id's wait with the DecodeError; a later good reply clears it.
    const bad = newTaskId();
    const badWait = client.waitFor(bad, { timeout: 60_000 }).catch((e: unknown) => e);
    await reply(bad, Buffer.from('[1, 2]'), 'application/json');
    expect(await badWait).toBeInstanceOf(DecodeError);
    await reply(
      bad,
      Buffer.from(JSON.stringify({ task_id: bad, status: 'SUCCESS', result: 3 })),
      'application/json',
    );
    await waitUntil(async () => (await client.getTaskMeta(bad).catch(() => null))?.status === 'SUCCESS');
    expect((await client.waitFor(bad, { timeout: 5000 })).result).toBe(3);
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
    await ch.declareQueue({
      queue: backend.oid,
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
    const queue = uid('rpc-test-q');
    cleanup.push(() => dropQueue(queue));
    const client = new Celery({ broker: t.url, backend: 'amqp://', settings: { task_default_queue: queue } });
    const server = new Celery({ broker: t.url, backend: 'amqp://', settings: { task_default_queue: queue } });
    const worker = new Worker(server, { queue, tasks: { add: ([a, b]) => Number(a) + Number(b) } });
    cleanup.push(() => client.close());
    cleanup.push(() => server.close());
    cleanup.push(() => worker.close());
    await worker.start();
    expect(await (await client.sendTask('add', [20, 22])).get({ timeout: 10_000 })).toBe(42);
  });

  it('sendTask resolves with the handle once published; a refused publish rejects it', async () => {
    const client = new Celery({ broker: t.url });
    cleanup.push(() => client.close());
    const refused = client.sendTask(
      'add',
      [1, 2],
      {},
      { exchange: uid('rpc-test-missing-exchange'), routingKey: 'x' },
    );
    await expect(refused).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(client.sendTask('')).rejects.toBeInstanceOf(ArgumentError);
    // A handle is never a thenable: awaiting it (or returning it from an async function) keeps it.
    const r = await client.sendTask<number>('add', [1, 2], {}, { ignoreResult: true });
    expect(r).toBeInstanceOf(AsyncResult);
    expect('then' in r).toBe(false);
    expect(await (async () => r)()).toBe(r);
  });

  it('group operations are unsupported, as in Celery', async () => {
    const backend = new RPCBackend({ connection: t.url });
    cleanup.push(() => backend.close());
    await expect(backend.saveGroup(newTaskId(), [])).rejects.toBeInstanceOf(CeleryAmqpError);
    await expect(backend.restoreGroup(newTaskId())).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});
