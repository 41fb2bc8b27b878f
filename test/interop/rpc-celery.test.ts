/**
 * rpc:// and protocol v2 against a real Python Celery 5 worker and client over RabbitMQ.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { TaskError } from '../../src/celery/exceptions.js';
import { ResultSet } from '../../src/celery/result.js';
import type { RPCBackend } from '../../src/celery/rpc-backend.js';
import { decodeTaskMessage, encodeTaskMessage, parseIsoDate } from '../../src/celery/task-message.js';
import { Worker } from '../../src/celery/worker.js';
import { Connection } from '../../src/kombu/connection.js';
import { BROKER_URL, uid, waitUntil } from '../fixture.js';
import { runCeleryClient } from './python.js';
import { useCeleryWorker } from './celery-pair.js';
import { dropQueue } from '../worker-fixture.js';

describe('Node client -> Python Celery 5 worker (rpc://)', () => {
  const pair = useCeleryWorker('rpc-interop-py-worker', { worker: { concurrency: 4 } });

  it('add(2, 3) is 5', async () => {
    const r = await pair.app.sendTask('add', [2, 3]);
    expect(await r.get({ timeout: 15_000 })).toBe(5);
    expect(r.state).toBe('SUCCESS');
  });

  it('fail rejects with a TaskError ValueError and a traceback string', async () => {
    const r = await pair.app.sendTask('fail', ['nope']);
    const err: unknown = await r.get({ timeout: 15_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).excType).toBe('ValueError');
    expect((err as TaskError).excArgs).toEqual(['nope']);
    expect(typeof (err as TaskError).traceback).toBe('string');
    expect((err as TaskError).traceback).toContain('ValueError');
  });

  it('a group of 100 via joinNative gives results in input order', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => pair.app.sendTask('add', [i, 1000])),
    );
    const values = await new ResultSet(results, pair.app.backend).joinNative({ timeout: 30_000 });
    expect(values).toEqual(Array.from({ length: 100 }, (_, i) => i + 1000));
  });

  it('PROGRESS updates the state without resolving', async () => {
    const r = await pair.app.sendTask('progress', [20]);
    let settled = false;
    const got = r.get({ timeout: 15_000 }).finally(() => (settled = true));
    const backend = pair.app.backend as RPCBackend;
    let seen: unknown;
    await waitUntil(
      async () => {
        const m = await backend.getTaskMeta(r.id);
        if (m.status === 'PROGRESS') seen = m.result;
        return m.status === 'PROGRESS' || m.status === 'SUCCESS';
      },
      { interval: 5, timeout: 15_000, what: 'PROGRESS' },
    );
    expect(seen).toMatchObject({ total: 20 });
    expect(settled).toBe(false);
    expect(await got).toBe(20);
  });

  it('STARTED (track_started) updates the state without resolving', async () => {
    const r = await pair.app.sendTask('started', [1]);
    let settled = false;
    const got = r.get({ timeout: 15_000 }).finally(() => (settled = true));
    const backend = pair.app.backend as RPCBackend;
    let started: unknown;
    await waitUntil(
      async () => {
        const m = await backend.getTaskMeta(r.id);
        if (m.status === 'STARTED') started = m.result;
        return m.status !== 'PENDING';
      },
      { interval: 5, timeout: 15_000, what: 'STARTED' },
    );
    expect(started).toMatchObject({ pid: expect.any(Number), hostname: expect.any(String) });
    expect(settled).toBe(false);
    expect(await got).toBe('started');
  });
});

describe('Python Celery 5 client -> Node worker (rpc://)', () => {
  const queue = uid('rpc-interop-node-worker');
  let app: Celery;
  let worker: Worker;
  /** Names of `never` calls that ran (an expired task must not). */
  const neverRan: unknown[] = [];

  beforeAll(async () => {
    app = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
    worker = new Worker(app, {
      queue,
      tasks: {
        add: ([a, b]) => Number(a) + Number(b),
        fail: ([msg]) => {
          throw new TaskError({ excType: 'ValueError', excModule: 'builtins', excArgs: [msg] });
        },
        progress: async ([n], _k, ctx) => {
          await ctx.updateState('PROGRESS', { current: 1, total: n });
          return n;
        },
        never: ([name]) => neverRan.push(name),
        // When it ran and the eta it came with, both in the worker's view (ms since the epoch).
        stamp: (_a, _k, ctx) => ({
          ran_at: Date.now(),
          eta: parseIsoDate(String(ctx.message.headers['eta'])),
        }),
      },
    });
    await worker.start();
  });

  afterAll(async () => {
    await worker?.close();
    await app?.close();
    await dropQueue(BROKER_URL, queue);
  });

  /** The Python client sends `task` with JSON `args` to the Node worker's queue (15 s timeout). */
  const send = (task: string, args: string, ...extra: string[]): ReturnType<typeof runCeleryClient> =>
    runCeleryClient(['send', task, args, '--queue', queue, '--timeout', '15', ...extra]);

  it('a Python AsyncResult.get() receives what Node stores', async () => {
    const out = await send('add', '[2, 3]');
    expect(out.code).toBe(0);
    expect(out.lines.at(-1)).toMatchObject({ status: 'SUCCESS', result: 5, traceback: null });
  });

  it('a failure reaches Python as its ValueError', async () => {
    const out = await send('fail', '["bad"]');
    expect(out.code).toBe(0);
    expect(out.lines.at(-1)).toMatchObject({
      status: 'FAILURE',
      result: { exc_type: 'ValueError', exc_message: ['bad'], exc_module: 'builtins' },
    });
    expect(typeof (out.lines.at(-1) as { traceback: unknown }).traceback).toBe('string');
  });

  it('Python sees the PROGRESS state message before the result', async () => {
    const out = await send('progress', '[3]', '--events');
    expect(out.code).toBe(0);
    const events = out.lines.filter((l) => typeof l === 'object' && l !== null && 'event' in l);
    expect(events.map((e) => (e as { event: { status: string } }).event.status)).toEqual([
      'PROGRESS',
      'SUCCESS',
    ]);
    expect(out.lines.at(-1)).toMatchObject({ status: 'SUCCESS', result: 3 });
  });

  it('expires in the past: get() raises celery.exceptions.TaskRevokedError, the task never runs', async () => {
    // Celery 5.2 sends the past expiry as a TTL of 0: RabbitMQ hands it to our idle consumer.
    const out = await send('never', '["past"]', '--expires=-5', '--propagate');
    expect(out.code).toBe(0);
    expect(out.lines.at(-1)).toMatchObject({
      status: 'REVOKED',
      raised: { exc_type: 'TaskRevokedError', exc_module: 'celery.exceptions', exc_message: ['expired'] },
      traceback: null,
    });
    expect(neverRan).toEqual([]);
  });

  it('expires before the countdown ends: revoked when the eta comes, the task never runs', async () => {
    const out = await send('never', '["short"]', '--countdown', '1', '--expires', '0.3', '--propagate');
    expect(out.code).toBe(0);
    const line = out.lines.at(-1) as { elapsed_s: number };
    expect(line).toMatchObject({
      status: 'REVOKED',
      raised: { exc_type: 'TaskRevokedError', exc_module: 'celery.exceptions', exc_message: ['expired'] },
    });
    // Held until the eta (1 s), then found expired: not revoked on receipt.
    expect(line.elapsed_s).toBeGreaterThanOrEqual(1);
    expect(neverRan).toEqual([]);
  });

  it('countdown=1: Python gets the result, no earlier than the countdown', async () => {
    const out = await send('stamp', '[]', '--countdown', '1', '--propagate');
    expect(out.code).toBe(0);
    const line = out.lines.at(-1) as {
      status: string;
      result: { ran_at: number; eta: number };
      elapsed_s: number;
    };
    expect(line.status).toBe('SUCCESS');
    expect(line.result.ran_at).toBeGreaterThanOrEqual(line.result.eta);
    expect(line.elapsed_s).toBeGreaterThanOrEqual(1);
    expect(worker.held).toBe(0);
  });
});

describe('task message v2: what Celery 5 sends vs what Node sends', () => {
  const queue = uid('rpc-interop-capture');
  afterAll(() => dropQueue(BROKER_URL, queue));

  it('same header keys, properties and body shape', async () => {
    // No worker on the queue: the Python client times out and leaves its message there.
    const out = await runCeleryClient(['send', 'add', '[2, 3]', '--queue', queue, '--timeout', '0.5']);
    expect(out.code).toBe(3);
    const conn = new Connection(BROKER_URL);
    try {
      const ch = await conn.channel();
      const m = await ch.get({ queue, noAck: true });
      expect(m).not.toBeNull();
      if (m === null) return;
      const py = decodeTaskMessage(m);
      expect(py).toMatchObject({ task: 'add', args: [2, 3], kwargs: {}, protocol: 2 });
      expect(py.correlationId).toBe(py.id);
      expect(py.replyTo).toMatch(/^[0-9a-f-]{36}$/);
      const node = encodeTaskMessage({ task: 'add', args: [2, 3], replyTo: 'x' });
      expect(Object.keys(node.headers).sort()).toEqual(Object.keys(py.headers).sort());
      expect(node.headers['argsrepr']).toBe(py.headers['argsrepr']);
      expect(node.headers['kwargsrepr']).toBe(py.headers['kwargsrepr']);
      expect(node.headers['timelimit']).toEqual(py.headers['timelimit']);
      expect(node.body[2]).toEqual(py.embed);
      expect(m.properties).toMatchObject({
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 2,
      });
      expect(m.deliveryInfo.exchange).toBe('');
      expect(m.deliveryInfo.routingKey).toBe(queue);
    } finally {
      await conn.close();
    }
  });
});
