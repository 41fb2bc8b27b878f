/**
 * Celery 5.1-5.4 task headers through the Node client and the Node Worker (memory://):
 * `ignore_result` (the worker stores nothing, from the header or the task's option),
 * `stamped_headers`/`stamps` (kept in the request, checked at the door, republished by a
 * retry), `replaced_task_nesting` (kept by a retry).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Worker } from '../../src/celery/worker.js';
import type { TaskDefinition, TaskHandler } from '../../src/celery/worker.js';
import type { Request } from '../../src/celery/worker/request.js';
import { cleanupStack, newTaskId, waitUntil } from '../fixture.js';
import { publishRaw, recordStores, startWorker } from '../worker-fixture.js';

const cleanups = cleanupStack();
afterEach(() => cleanups.run());

async function setup(tasks: Record<string, TaskHandler | TaskDefinition>) {
  const started = await startWorker(cleanups, tasks);
  return { ...started, stored: recordStores(started.server) };
}

/** Resolves with the id of the next task the worker finishes. */
function succeeded(worker: Worker): Promise<string> {
  return new Promise((resolve) => worker.once('task-succeeded', (req) => resolve(req.id)));
}

describe('ignore_result (Celery 5.1)', () => {
  it('the header makes the worker store nothing; the task runs', async () => {
    const { client, worker, stored } = await setup({ add: ([a, b]) => Number(a) + Number(b) });
    const done = succeeded(worker);
    const r = await client.sendTask('add', [1, 2], {}, { ignoreResult: true });
    expect(await done).toBe(r.id);
    expect(stored).toEqual([]);
    // The same task without the header is stored.
    expect(await (await client.sendTask('add', [1, 2])).get({ timeout: 5000 })).toBe(3);
    expect(stored.map((s) => s.status)).toEqual(['SUCCESS']);
  });

  it('the task option does the same whatever the header says', async () => {
    const { client, worker, stored } = await setup({
      quiet: { handler: () => 'x', ignoreResult: true, trackStarted: true },
    });
    const done = succeeded(worker);
    const r = await client.sendTask('quiet', [], {}, { ignoreResult: false });
    expect(await done).toBe(r.id);
    expect(stored).toEqual([]);
  });

  it('a raw ignore_result header from another client (as Python sends it) is honoured', async () => {
    const { worker, queue, stored } = await setup({ echo: ([x]) => x });
    const id = newTaskId();
    const done = succeeded(worker);
    await publishRaw('memory://', queue, JSON.stringify([[1], {}, {}]), {
      headers: { lang: 'py', task: 'echo', id, ignore_result: true },
      correlationId: id,
      replyTo: 'nobody',
    });
    expect(await done).toBe(id);
    expect(stored).toEqual([]);
  });
});

describe('stamps (5.3) and replaced_task_nesting (5.4)', () => {
  it('reach the handler’s request; a malformed stamped_headers is refused at the door', async () => {
    const { client, worker, queue } = await setup({
      show: (_a, _k, ctx) => ({ names: ctx.request['stamped_headers'], stamps: ctx.request['stamps'] }),
    });
    const r = await client.sendTask('show', [], {}, { stamps: { tenant: 'acme' } });
    expect(await r.get({ timeout: 5000 })).toEqual({ names: ['tenant'], stamps: { tenant: 'acme' } });
    const invalid = new Promise<Error>((resolve) => worker.once('invalid', resolve));
    const id = newTaskId();
    await publishRaw('memory://', queue, JSON.stringify([[], {}, {}]), {
      headers: { lang: 'py', task: 'show', id, stamped_headers: 'tenant', stamps: {} },
      correlationId: id,
    });
    expect((await invalid).message).toMatch(/stamped_headers must be a list of header names/);
  });

  it('a retry republishes stamped_headers, stamps and replaced_task_nesting', async () => {
    let runs = 0;
    const { client, worker } = await setup({
      again: (_a, _k, ctx) => {
        runs += 1;
        return runs === 1 ? ctx.retry({ countdown: 60 }) : 'done';
      },
    });
    const received: Array<Record<string, unknown>> = [];
    worker.on('task-received', (req) => void received.push((req as Request).task.headers));
    await client.sendTask('again', [], {}, { stamps: { tenant: 'acme' }, replacedTaskNesting: 2 });
    // The retry comes back to the worker (held for its eta a minute away).
    const retried = await waitUntil(() => received[1], { what: 'the retried message' });
    expect(retried).toMatchObject({
      retries: 1,
      stamped_headers: ['tenant'],
      stamps: { tenant: 'acme' },
      replaced_task_nesting: 2,
    });
  });
});
