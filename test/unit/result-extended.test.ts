/**
 * result_extended on both backends (memory://): the body each lays out as Celery's code
 * does (4.4.7's AMQP store_result; _get_result_meta for rpc:// as Celery's main branch),
 * what the Node Worker passes through from the request, and AsyncResult's getters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CeleryAppSettings } from '../../src/celery/app.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { resultBody } from '../../src/celery/result-meta.js';
import { AsyncResult } from '../../src/celery/result.js';
import type { TaskDefinition, TaskHandler } from '../../src/celery/worker.js';
import { ArgumentError } from '../../src/errors.js';
import { cleanupStack } from '../fixture.js';
import { recordStores, startWorker } from '../worker-fixture.js';
import type { WorkerSetup } from '../worker-fixture.js';

const cleanups = cleanupStack();
afterEach(() => cleanups.run());

const REQUEST = {
  id: 't1',
  task: 'tasks.add',
  args: [2, 3],
  kwargs: { z: 1 },
  hostname: 'node1@host',
  retries: 2,
  group: 'g1',
  parent_id: 'p1',
  delivery_info: { exchange: '', routing_key: 'math' },
  children: [],
};
const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

describe('the result_extended layouts', () => {
  it('amqp: Celery 4.4.7’s five keys and the six request fields, no date_done', () => {
    expect(resultBody('t1', 5, 'SUCCESS', null, REQUEST, 'amqp', NOW)).toEqual({
      task_id: 't1',
      status: 'SUCCESS',
      result: 5,
      traceback: null,
      children: [],
      name: 'tasks.add',
      args: [2, 3],
      kwargs: { z: 1 },
      worker: 'node1@host',
      retries: 2,
      queue: 'math',
    });
    // 4.4.7 adds the keys even without a request, as nulls.
    expect(resultBody('t1', 5, 'SUCCESS', null, undefined, 'amqp')).toMatchObject({
      name: null,
      queue: null,
    });
  });

  it('meta: _get_result_meta with date_done, group_id, parent_id; no request fields without a request', () => {
    expect(resultBody('t1', 5, 'SUCCESS', null, REQUEST, 'meta', NOW)).toEqual({
      task_id: 't1',
      status: 'SUCCESS',
      result: 5,
      traceback: null,
      children: [],
      date_done: '2026-01-02T03:04:05.678000+00:00',
      group_id: 'g1',
      parent_id: 'p1',
      name: 'tasks.add',
      args: [2, 3],
      kwargs: { z: 1 },
      worker: 'node1@host',
      retries: 2,
      queue: 'math',
    });
    expect(resultBody('t1', null, 'STARTED', null, undefined, 'meta')).toEqual({
      task_id: 't1',
      status: 'STARTED',
      result: null,
      traceback: null,
      children: null,
      date_done: null,
    });
  });

  it('stamps: stamped_headers and each stamp by name (Celery 5.3); never over a meta key', () => {
    const stamped = {
      ...REQUEST,
      stamped_headers: ['tenant', 'status', '__proto__'],
      stamps: { tenant: 'a' },
    };
    const body = resultBody('t1', 5, 'SUCCESS', null, stamped, 'meta', NOW);
    expect(body['stamped_headers']).toEqual(['tenant', 'status', '__proto__']);
    expect(body['tenant']).toBe('a');
    expect(body.status).toBe('SUCCESS');
    expect(Object.getPrototypeOf(body)).toBe(Object.prototype);
  });

  it('is off by default and validated', () => {
    expect(Object.keys(resultBody('t1', 5, 'SUCCESS', null, REQUEST))).toEqual([
      'task_id',
      'status',
      'result',
      'traceback',
      'children',
    ]);
    expect(new RPCBackend({ connection: 'memory://' }).extended).toBe(false);
    expect(
      new RPCBackend({ connection: 'memory://', settings: { CELERY_RESULT_EXTENDED: true } }).extended,
    ).toBe(true);
    expect(
      () =>
        new RPCBackend({
          connection: 'memory://',
          settings: { result_extended: 'yes' as unknown as boolean },
        }),
    ).toThrow(ArgumentError);
  });
});

/** A client and a Node Worker on memory://; `backend` and `settings` go to both apps. */
function setup(
  backend: string,
  settings: Partial<CeleryAppSettings>,
  tasks: Record<string, TaskHandler | TaskDefinition>,
): Promise<WorkerSetup> {
  return startWorker(cleanups, tasks, { appBackend: backend, appSettings: settings });
}

describe.each(['rpc://', 'amqp://'])('the Node Worker with result_extended on %s', (backend) => {
  it('stores the request’s fields; AsyncResult reads them', async () => {
    const { client, queue } = await setup(
      backend,
      { result_extended: true },
      {
        add: ([a, b]) => Number(a) + Number(b),
      },
    );
    const r = await client.sendTask<number>('add', [2, 3], { unused: true });
    expect(await r.get({ timeout: 5000 })).toBe(5);
    expect(r.name).toBe('add');
    expect(r.args).toEqual([2, 3]);
    expect(r.kwargs).toEqual({ unused: true });
    expect(r.worker).toMatch(/^node\d+(-\d+)?@/);
    expect(r.retries).toBe(0);
    expect(r.queue).toBe(queue);
    if (backend === 'rpc://') {
      const done = r.dateDone;
      expect(done).toBeInstanceOf(Date);
      expect(Math.abs((done?.getTime() ?? 0) - Date.now())).toBeLessThan(60_000);
    } else {
      expect(r.dateDone).toBeNull(); // Celery 4.4.7's AMQP backend stores no date_done
    }
  });

  it('carries retries and stamps through a retry (the republished message kept them)', async () => {
    let runs = 0;
    const { client, server } = await setup(
      backend,
      { result_extended: true },
      {
        flaky: {
          handler: async (_args, _kwargs, ctx) => {
            runs += 1;
            if (runs === 1) return ctx.retry({ countdown: 0 });
            return 'ok';
          },
        },
      },
    );
    const stored = recordStores(server);
    const r = await client.sendTask('flaky', [], {}, { stamps: { tenant: 'acme', batch: [1, 2] } });
    expect(await r.get({ timeout: 5000 })).toBe('ok');
    expect(r.retries).toBe(1);
    expect(r.meta?.['stamped_headers']).toEqual(['tenant', 'batch']);
    expect(r.meta?.['tenant']).toBe('acme');
    expect(r.meta?.['batch']).toEqual([1, 2]);
    expect(stored.map((s) => s.status)).toEqual(['RETRY', 'SUCCESS']);
  });

  it('without result_extended the meta has Celery 5.2’s five keys', async () => {
    const { client } = await setup(backend, {}, { add: ([a, b]) => Number(a) + Number(b) });
    const r = await client.sendTask('add', [1, 1], {}, { stamps: { tenant: 'acme' } });
    expect(await r.get({ timeout: 5000 })).toBe(2);
    expect(Object.keys(r.meta ?? {}).sort()).toEqual([
      'children',
      'result',
      'status',
      'task_id',
      'traceback',
    ]);
    expect(r.name).toBeNull();
    expect(new AsyncResult('x', client.backend).dateDone).toBeNull();
  });
});
