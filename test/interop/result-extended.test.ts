/**
 * result_extended across languages, both directions, both backends:
 * - rpc://, Python stores: a real Celery 5.2 worker with result_extended, its RPC backend
 *   storing it as Celery's main branch does (7c5d9a62d; 5.2 itself ignores the setting);
 *   Node's AsyncResult reads name, args, kwargs, worker, retries, queue, dateDone.
 * - rpc://, Node stores: the Node Worker with result_extended answers a Celery 5.2 client,
 *   whose own AsyncResult.name/args/kwargs/... read the fields (and Celery 5.3 stamps sent
 *   raw by the Python client come back in the meta; ignore_result sent raw is honoured).
 * - amqp://: the Celery 4.4 AMQP-backend peer stores 4.4.7's extended payload and Node reads
 *   it; Node stores and the peer reads it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { Celery } from '../../src/celery/app.js';
import { AsyncResult } from '../../src/celery/result.js';
import { Worker } from '../../src/celery/worker.js';
import { silentLogger } from '../../src/logger.js';
import { BROKER_URL, newTaskId, uid, waitUntil } from '../fixture.js';
import { dropQueue } from '../worker-fixture.js';
import { runCeleryClient, runPeer } from './python.js';
import { useCeleryWorker } from './celery-pair.js';
import type { PeerResult } from './python.js';

function ok(r: PeerResult): PeerResult {
  if (r.code !== 0) throw new Error(`peer exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

describe('rpc://: a Celery 5 worker stores, Node reads', () => {
  const pair = useCeleryWorker('rx-py', { worker: { concurrency: 1, env: { CELERY_RESULT_EXTENDED: '1' } } });
  const { queue } = pair;

  it('AsyncResult exposes name, args, kwargs, worker, retries, queue and dateDone', async () => {
    const before = Date.now();
    const r = await pair.app.sendTask<number>('add', [2, 3]);
    expect(await r.get({ timeout: 15_000 })).toBe(5);
    expect(r.name).toBe('add');
    expect(r.args).toEqual([2, 3]);
    expect(r.kwargs).toEqual({});
    expect(r.worker).toMatch(/^peer-rx-py-/);
    expect(r.retries).toBe(0);
    expect(r.queue).toBe(queue);
    const done = r.dateDone?.getTime() ?? 0;
    expect(done).toBeGreaterThanOrEqual(before - 5000);
    expect(done).toBeLessThanOrEqual(Date.now() + 5000);
  });
});

describe('rpc://: the Node Worker stores, a Celery 5 client reads', () => {
  const queue = uid('rx-node');
  let server: Celery;
  let worker: Worker;
  const succeeded: string[] = [];

  beforeAll(async () => {
    server = new Celery({
      broker: BROKER_URL,
      settings: { task_default_queue: queue, result_extended: true },
    });
    worker = new Worker(server, {
      logger: silentLogger,
      heartbeat: false,
      remoteControl: false,
      hostname: `node-rx@${queue}`,
      queue,
      tasks: {
        add: ([a, b]) => Number(a) + Number(b),
        echo: ([x]) => x,
      },
    });
    // Emitted after the result is stored (or, with ignore_result, not stored).
    worker.on('task-succeeded', (task) => void succeeded.push(task.id));
    await worker.start();
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await server?.close();
    await dropQueue(BROKER_URL, queue);
  }, 30_000);

  it("Python's AsyncResult reads name, args, kwargs, worker, retries, queue, date_done", async () => {
    const r = ok(
      await runCeleryClient(['send', 'add', '[2, 3]', '--kwargs', '{}', '--queue', queue, '--extended']),
    );
    const line = r.lines[0] as { result: number; extended: Record<string, unknown> };
    expect(line.result).toBe(5);
    expect(line.extended).toMatchObject({
      name: 'add',
      args: [2, 3],
      kwargs: {},
      worker: `node-rx@${queue}`,
      retries: 0,
      queue,
    });
    expect(String(line.extended['date_done'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
  });

  it('stamps sent raw by Python (Celery 5.3 headers) come back in the meta', async () => {
    const headers = { stamped_headers: ['tenant'], stamps: { tenant: 'acme' } };
    const r = ok(
      await runCeleryClient([
        'send',
        'add',
        '[1, 1]',
        '--queue',
        queue,
        '--extended',
        '--headers',
        JSON.stringify(headers),
      ]),
    );
    const line = r.lines[0] as { result: number; meta: Record<string, unknown> };
    expect(line.result).toBe(2);
    expect(line.meta).toMatchObject({ stamped_headers: ['tenant'], tenant: 'acme', name: 'add' });
  });

  it('ignore_result sent raw by Python: the Node Worker runs the task and stores nothing', async () => {
    const stores: string[] = [];
    const store = server.backend.storeResult.bind(server.backend);
    server.backend.storeResult = (id, result, status, options) => {
      stores.push(id);
      return store(id, result, status, options);
    };
    const id = newTaskId();
    const r = await runCeleryClient([
      'send',
      'echo',
      '[7]',
      '--queue',
      queue,
      '--task-id',
      id,
      '--timeout',
      '1',
      '--headers',
      JSON.stringify({ ignore_result: true }),
    ]);
    expect(r.code).toBe(3); // Python's get() times out: no result was sent
    await waitUntil(() => succeeded.includes(id), { what: 'the task to run' });
    expect(stores).not.toContain(id);
  });
});

describe('amqp:// (Celery 4.4 AMQP backend layout)', () => {
  const ids: string[] = [];
  const backends: AMQPBackend[] = [];
  const backend = (extended: boolean): AMQPBackend => {
    const b = new AMQPBackend({ connection: BROKER_URL, settings: { result_extended: extended } });
    backends.push(b);
    return b;
  };

  afterAll(async () => {
    for (const b of backends) await b.close();
    await runPeer(['delete-queue', ...ids]);
  }, 30_000);

  it('Python stores 4.4.7’s extended payload; Node reads the fields', async () => {
    const id = newTaskId();
    ids.push(id);
    const request = {
      task_name: 'tasks.add',
      args: [2, 3],
      kwargs: { z: 1 },
      hostname: 'py@host',
      retries: 1,
      delivery_info: { routing_key: 'math' },
    };
    ok(await runPeer(['store', id, 'SUCCESS', '5', '--result-extended', JSON.stringify(request)]));
    const r = new AsyncResult<number>(id, backend(false));
    expect(await r.get({ timeout: 10_000 })).toBe(5);
    expect([r.name, r.args, r.kwargs, r.worker, r.retries, r.queue]).toEqual([
      'tasks.add',
      [2, 3],
      { z: 1 },
      'py@host',
      1,
      'math',
    ]);
    expect(r.dateDone).toBeNull();
  });

  it('Node stores with result_extended; Python reads name, args, kwargs', async () => {
    const id = newTaskId();
    ids.push(id);
    await backend(true).storeResult(id, 5, 'SUCCESS', {
      request: {
        id,
        task: 'tasks.add',
        args: [2, 3],
        kwargs: { z: 1 },
        hostname: 'node@host',
        retries: 0,
        delivery_info: { routing_key: 'math' },
      },
    });
    const r = ok(await runPeer(['get', id]));
    expect(r.lines[0]).toEqual({
      task_id: id,
      status: 'SUCCESS',
      result: 5,
      traceback: null,
      children: [],
      name: 'tasks.add',
      args: [2, 3],
      kwargs: { z: 1 },
      worker: 'node@host',
      retries: 0,
      queue: 'math',
    });
  });
});
