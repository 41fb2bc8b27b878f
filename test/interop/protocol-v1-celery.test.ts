/**
 * `task_protocol: 1` against a real Celery 5 worker (Debian's python3-celery 5.2, which reads
 * protocol v1 as Celery 3.1 sends it): JSON and pickle bodies (the worker's accept_content
 * names pickle), the right results, the request fields as the worker saw them, and an expiry
 * carried in the body (no per-message TTL in v1) honoured by the worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { TaskRevokedError } from '../../src/celery/exceptions.js';
import { BROKER_URL, uid } from '../fixture.js';
import { dropQueue } from '../worker-fixture.js';
import { startCeleryWorker } from './python.js';
import type { CeleryWorker } from './python.js';

describe('task protocol v1 to a real Celery 5 worker', () => {
  const queue = uid('v1-interop');
  let worker: CeleryWorker;
  let json: Celery;
  let pickle: Celery;

  beforeAll(async () => {
    worker = await startCeleryWorker({
      queue,
      concurrency: 2,
      env: { CELERY_ACCEPT_CONTENT: 'pickle,json', C_FORCE_ROOT: '1' },
    });
    json = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue, task_protocol: 1 } });
    pickle = new Celery({
      broker: BROKER_URL,
      settings: { task_default_queue: queue, task_protocol: 1, task_serializer: 'pickle' },
    });
  }, 60_000);

  afterAll(async () => {
    await json?.close();
    await pickle?.close();
    await worker?.stop();
    await dropQueue(BROKER_URL, queue);
  }, 30_000);

  it('JSON bodies: the right results and the request as the worker read it', async () => {
    expect(await (await json.sendTask('add', [2, 3])).get({ timeout: 15_000 })).toBe(5);
    const r = await json.sendTask('whoami', [], {}, { groupId: 'grp-1', timeLimit: 30, softTimeLimit: 20 });
    expect(await r.get({ timeout: 15_000 })).toEqual({
      id: r.id,
      task: 'whoami',
      group: 'grp-1',
      retries: 0,
      reply_to: json.oid,
      correlation_id: r.id,
      timelimit: [30, 20],
      eta: null,
    });
  });

  it('pickle bodies: Python receives ints of any size, bytes, floats and nested data as Python values', async () => {
    expect(await (await pickle.sendTask('add', [2, 3])).get({ timeout: 15_000 })).toBe(5);
    const r = await pickle.sendTask('kinds', [2n ** 70n, Buffer.from([0xff, 0x00]), 1.5, [1, 'a']], {
      d: { k: null },
    });
    expect(await r.get({ timeout: 15_000 })).toEqual({
      args: [
        ['int', '1180591620717411303424'],
        ['bytes', "b'\\xff\\x00'"],
        ['float', '1.5'],
        ['list', "[1, 'a']"],
      ],
      kwargs: { d: ['dict', "{'k': None}"] },
    });
  });

  it('a past expiry in the v1 body is honoured by the worker (REVOKED), not dropped by a TTL', async () => {
    const r = await pickle.sendTask('add', [1, 1], {}, { expires: new Date(Date.now() - 60_000) });
    const err = await r.get({ timeout: 15_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskRevokedError);
  });
});
