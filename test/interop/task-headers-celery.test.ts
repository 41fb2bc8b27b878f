/**
 * The Celery 5.1-5.4 headers a Node client sends, read by a real Celery 5.2 worker: it
 * honours `ignore_result` (5.1) and runs tasks carrying the later `stamped_headers`/`stamps`
 * (5.3) and `replaced_task_nesting` (5.4), which it does not know, unharmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { BROKER_URL, uid, waitUntil } from '../fixture.js';
import { dropQueue } from '../worker-fixture.js';
import { startCeleryWorker } from './python.js';
import type { CeleryWorker } from './python.js';

describe('Celery 5.x task headers from Node to a Celery 5.2 worker', () => {
  const queue = uid('hdr-py');
  let worker: CeleryWorker;
  let app: Celery;

  beforeAll(async () => {
    // One thread, prefetch 1: tasks run and reply in the order they were sent.
    worker = await startCeleryWorker({ queue, concurrency: 1, env: { CELERY_PREFETCH: '1' } });
    app = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await worker?.stop();
    await dropQueue(BROKER_URL, queue);
  }, 30_000);

  it('stamps and replaced_task_nesting: the task runs and answers', async () => {
    const r = await app.sendTask<number>(
      'add',
      [2, 3],
      {},
      { stamps: { tenant: 'acme' }, replacedTaskNesting: 1 },
    );
    expect(await r.get({ timeout: 15_000 })).toBe(5);
  });

  it('ignore_result: the worker sends no result for it', async () => {
    const ignored = await app.sendTask('add', [1, 1], {}, { ignoreResult: true });
    // Sent after it on the same single-threaded worker: its reply comes after any reply of the first.
    const next = await app.sendTask<number>('add', [2, 2]);
    expect(await next.get({ timeout: 15_000 })).toBe(4);
    expect((await app.backend.getTaskMeta(ignored.id)).status).toBe('PENDING');
    await waitUntil(() => worker.logs().includes(`Task add[${ignored.id}] succeeded`), {
      what: 'the ignored task to have run',
    });
  });
});
