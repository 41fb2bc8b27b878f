/**
 * Remote control on memory://: `app.control` (the Node client) against Node workers through
 * the pidbox fanout exchange and each worker's own mailbox queue.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { TaskRevokedError } from '../../src/celery/exceptions.js';
import { TaskTerminated } from '../../src/celery/worker.js';
import { Connection } from '../../src/kombu/connection.js';
import { cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';
import { recordStores, send, startWorker } from '../worker-fixture.js';

const URL = 'memory://';

describe('Remote control (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  /** A worker answering remote control, with a unique node name. */
  async function controlled(
    tasks: Parameters<typeof startWorker>[1],
    options: Parameters<typeof startWorker>[2] = {},
  ) {
    const hostname = `${uid('node')}@test`;
    const setup = await startWorker(cleanups, tasks, { remoteControl: true, hostname, ...options });
    return { ...setup, hostname };
  }

  it('ping: the worker answers pong under its node name; destination filters', async () => {
    const a = await controlled({});
    const b = await controlled({});
    const all = await a.client.control.ping({ timeout: 300 });
    const names = all.flatMap((r) => Object.keys(r));
    expect(names).toEqual(expect.arrayContaining([a.hostname, b.hostname]));
    expect(all.find((r) => a.hostname in r)).toEqual({ [a.hostname]: { ok: 'pong' } });
    const one = await a.client.control.ping({ destination: [b.hostname], timeout: 2000 });
    expect(one).toEqual([{ [b.hostname]: { ok: 'pong' } }]);
    const glob = await a.client.control.ping({
      pattern: `${a.hostname.slice(0, 8)}*`,
      matcher: 'glob',
      timeout: 300,
    });
    expect(glob.flatMap((r) => Object.keys(r))).toEqual([a.hostname]);
  });

  it('inspect registered, active, reserved, scheduled, stats, active_queues, conf, query_task', async () => {
    const gates: Array<() => void> = [];
    const { client, hostname, queue } = await controlled(
      {
        'tasks.hold': () => new Promise<number>((resolve) => gates.push(() => resolve(1))),
        'tasks.limited': { handler: () => 1, rateLimit: '10/m' },
      },
      { concurrency: 1 },
    );
    const i = client.control.inspect({ destination: [hostname], timeout: 2000 });
    expect((await i.registered())[hostname]).toEqual(['tasks.hold', 'tasks.limited [rate_limit=10/m]']);
    const running = await send(client, 'tasks.hold', [1], { k: 2 });
    const waiting = await send(client, 'tasks.hold', [2]);
    const later = await send(client, 'tasks.hold', [3], {}, { countdown: 60 });
    await waitUntil(() => gates.length === 1);
    await waitUntil(async () => ((await i.scheduled())[hostname] ?? []).length === 1);
    const active = (await i.active())[hostname];
    expect(active).toEqual([
      expect.objectContaining({
        id: running.id,
        name: 'tasks.hold',
        type: 'tasks.hold',
        args: [1],
        kwargs: { k: 2 },
        hostname,
        acknowledged: false,
        worker_pid: process.pid,
        delivery_info: expect.objectContaining({ routing_key: queue }),
      }),
    ]);
    expect((await i.active(true))[hostname]?.[0]).toMatchObject({ args: '[1]', kwargs: "{'k': 2}" });
    expect((await i.reserved())[hostname]).toEqual([expect.objectContaining({ id: waiting.id })]);
    expect((await i.scheduled())[hostname]).toEqual([
      expect.objectContaining({
        eta: expect.stringMatching(/\+00:00$/),
        request: expect.objectContaining({ id: later.id }),
      }),
    ]);
    const stats = (await i.stats())[hostname];
    expect(stats).toMatchObject({ pid: process.pid, pool: { 'max-concurrency': 1 }, prefetch_count: 5 });
    expect((await i.activeQueues())[hostname]).toEqual([
      expect.objectContaining({
        name: queue,
        durable: true,
        exchange: expect.objectContaining({ name: queue }),
      }),
    ]);
    expect((await i.conf())[hostname]).toMatchObject({ worker_concurrency: 1, task_default_queue: queue });
    const q = (await i.queryTask(running.id, waiting.id))[hostname];
    expect(q?.[running.id]?.[0]).toBe('active');
    expect(q?.[waiting.id]?.[0]).toBe('reserved');
    gates.forEach((g) => g());
  });

  it('revoke: a held task is stored REVOKED at once; a revoked id arriving later is never run', async () => {
    const ran: unknown[] = [];
    const { client, server, worker, hostname } = await controlled({ t: ([x]) => ran.push(x) });
    const stored = recordStores(server);
    const held = await send(client, 't', ['held'], {}, { countdown: 60 });
    await waitUntil(() => worker.held === 1);
    expect(
      await client.control.revoke(held.id, { reply: true, destination: [hostname], timeout: 2000 }),
    ).toEqual([{ [hostname]: { ok: `tasks ${held.id} flagged as revoked` } }]);
    const err = await held.error();
    expect(err).toBeInstanceOf(TaskRevokedError);
    expect(err).toMatchObject({ excArgs: ['revoked'] });
    const id = newTaskId();
    await client.control.revoke(id, { reply: true, destination: [hostname], timeout: 2000 });
    const future = await send(client, 't', ['future'], {}, { taskId: id });
    expect(await future.error()).toMatchObject({ excArgs: ['revoked'] });
    expect(ran).toEqual([]);
    expect(stored.map((s) => s.status)).toEqual(['REVOKED', 'REVOKED']);
    expect(worker.counters.revoked).toBe(2);
    const revoked = await client.control.inspect({ destination: [hostname] }).revoked();
    expect(revoked[hostname]).toEqual(expect.arrayContaining([held.id, id]));
  });

  it('revoke with terminate: the running handler sees its signal abort; REVOKED terminated', async () => {
    const reasons: unknown[] = [];
    const { client, hostname, worker } = await controlled({
      long: (_a, _k, ctx) =>
        new Promise((_resolve, reject) =>
          ctx.signal.addEventListener('abort', () => {
            reasons.push(ctx.signal.reason);
            reject(ctx.signal.reason);
          }),
        ),
    });
    const r = await send(client, 'long');
    await waitUntil(() => worker.active === 1);
    const replies = await client.control.revoke(r.id, {
      terminate: true,
      reply: true,
      destination: [hostname],
      timeout: 2000,
    });
    expect(replies).toEqual([{ [hostname]: { ok: `terminate: ${r.id}` } }]);
    expect(await r.error()).toMatchObject({ excType: 'TaskRevokedError', excArgs: ['terminated'] });
    expect(reasons[0]).toBeInstanceOf(TaskTerminated);
    await waitUntil(() => worker.active === 0);
  });

  it('enable_events / disable_events toggle task events; rate_limit and time_limit change a task', async () => {
    const { client, hostname, worker } = await controlled({ t: () => 1 });
    const to = { reply: true, destination: [hostname], timeout: 2000 } as const;
    expect(await client.control.enableEvents(to)).toEqual([{ [hostname]: { ok: 'task events enabled' } }]);
    expect(worker.sendsTaskEvents).toBe(true);
    expect(await client.control.enableEvents(to)).toEqual([
      { [hostname]: { ok: 'task events already enabled' } },
    ]);
    expect(await client.control.disableEvents(to)).toEqual([{ [hostname]: { ok: 'task events disabled' } }]);
    expect(worker.sendsTaskEvents).toBe(false);
    expect(await client.control.rateLimit('t', '5/s', to)).toEqual([
      { [hostname]: { ok: 'new rate limit set successfully' } },
    ]);
    expect(worker.tasks.get('t')?.rateLimit).toBe('5/s');
    expect(await client.control.rateLimit('t', 'x/y', to)).toEqual([
      { [hostname]: { error: expect.stringMatching(/^Invalid rate limit string/) } },
    ]);
    expect(await client.control.rateLimit('nope', '1/s', to)).toEqual([
      { [hostname]: { error: 'unknown task' } },
    ]);
    expect(await client.control.timeLimit('t', { soft: 1, hard: 2 }, to)).toEqual([
      { [hostname]: { ok: 'time limits set successfully' } },
    ]);
    expect(worker.tasks.get('t')).toMatchObject({ softTimeLimit: 1, timeLimit: 2 });
    expect(await client.control.broadcast('no_such_command', to)).toEqual([
      { [hostname]: { error: "KeyError('no_such_command')" } },
    ]);
  });

  it('add_consumer / cancel_consumer change the queues consumed', async () => {
    const { client, hostname, worker } = await controlled({ t: ([x]) => x });
    const extra = uid('extra');
    const to = { reply: true, destination: [hostname], timeout: 2000 } as const;
    expect(await client.control.addConsumer(extra, to)).toEqual([
      { [hostname]: { ok: `add consumer ${extra}` } },
    ]);
    await waitUntil(() => worker.queues.includes(extra));
    expect(await (await send(client, 't', ['via extra'], {}, { queue: extra })).get()).toBe('via extra');
    expect(await client.control.cancelConsumer(extra, to)).toEqual([
      { [hostname]: { ok: `no longer consuming from ${extra}` } },
    ]);
    expect(worker.queues).not.toContain(extra);
    cleanups.push(async () => {
      const conn = new Connection(URL);
      const ch = await conn.channel();
      await ch.deleteQueue({ queue: extra }).catch(() => undefined);
      await conn.close();
    });
  });

  it('pool_grow raises the concurrency; shutdown closes the worker without a reply', async () => {
    const { client, hostname, worker } = await controlled({}, { concurrency: 1 });
    const to = { reply: true, destination: [hostname], timeout: 2000 } as const;
    expect(await client.control.poolGrow(2, to)).toEqual([{ [hostname]: { ok: 'pool will grow' } }]);
    expect(worker.concurrency).toBe(3);
    const shutdown: string[] = [];
    worker.on('shutdown', (how) => shutdown.push(how));
    expect(await client.control.shutdown({ ...to, timeout: 200 })).toEqual([]);
    await waitUntil(() => shutdown.length > 0);
    expect(shutdown).toEqual(['warm']);
  });

  it('a Celery app closes its control channel with it', async () => {
    const app = new Celery({ broker: URL });
    expect(await app.control.ping({ timeout: 50, destination: [`${uid('nobody')}@x`] })).toEqual([]);
    await app.close();
    await expect(app.control.ping()).rejects.toThrow(/closed/);
  });
});
