/**
 * The Celery 5.1-5.4 headers a Node client sends, read by a real Celery 5.2 worker: it
 * honours `ignore_result` (5.1) and runs tasks carrying the later `stamped_headers`/`stamps`
 * (5.3) and `replaced_task_nesting` (5.4), which it does not know, unharmed.
 */
import { describe, expect, it } from 'vitest';
import { waitUntil } from '../fixture.js';
import { useCeleryWorker } from './celery-pair.js';

describe('Celery 5.x task headers from Node to a Celery 5.2 worker', () => {
  // One thread, prefetch 1: tasks run and reply in the order they were sent.
  const pair = useCeleryWorker('hdr-py', { worker: { concurrency: 1, env: { CELERY_PREFETCH: '1' } } });

  it('stamps and replaced_task_nesting: the task runs and answers', async () => {
    const r = await pair.app.sendTask<number>(
      'add',
      [2, 3],
      {},
      { stamps: { tenant: 'acme' }, replacedTaskNesting: 1 },
    );
    expect(await r.get({ timeout: 15_000 })).toBe(5);
  });

  it('ignore_result: the worker sends no result for it', async () => {
    const ignored = await pair.app.sendTask('add', [1, 1], {}, { ignoreResult: true });
    // Sent after it on the same single-threaded worker: its reply comes after any reply of the first.
    const next = await pair.app.sendTask<number>('add', [2, 2]);
    expect(await next.get({ timeout: 15_000 })).toBe(4);
    expect((await pair.app.backend.getTaskMeta(ignored.id)).status).toBe('PENDING');
    await waitUntil(() => pair.worker.logs().includes(`Task add[${ignored.id}] succeeded`), {
      what: 'the ignored task to have run',
    });
  });
});
