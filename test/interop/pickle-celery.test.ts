/**
 * A real Celery 5 worker replying in pickle over rpc:// (result_serializer='pickle', as
 * Celery 3.1's default): with pickle in Node's accept list the values and a raised
 * ValueError arrive decoded; without it the wait rejects at once with ContentDisallowed. On
 * amqp:// (the Celery 4.4 AMQP backend peer storing a pickled result) the refused result
 * stays in its queue.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { Celery } from '../../src/celery/app.js';
import { TaskError } from '../../src/celery/exceptions.js';
import { AsyncResult } from '../../src/celery/result.js';
import { ContentDisallowedError } from '../../src/errors.js';
import { BROKER_URL, newTaskId } from '../fixture.js';
import { runPeer } from './python.js';
import { useCeleryWorker } from './celery-pair.js';

describe('Python Celery 5 worker with result_serializer=pickle (rpc://)', () => {
  const pair = useCeleryWorker('pickle-interop', {
    worker: { concurrency: 2, env: { CELERY_RESULT_SERIALIZER: 'pickle', C_FORCE_ROOT: '1' } },
    app: { settings: { accept_content: ['pickle', 'json'] } },
  });
  const { queue } = pair;

  it('int, str, a dict with a tuple, a datetime and a big int arrive decoded', async () => {
    expect(await (await pair.app.sendTask('add', [2, 3])).get({ timeout: 15_000 })).toBe(5);
    expect(await (await pair.app.sendTask('echo', ['héllo'])).get({ timeout: 15_000 })).toBe('héllo');
    expect(await (await pair.app.sendTask('mixed', [])).get({ timeout: 15_000 })).toEqual({
      n: 7,
      s: 'text',
      pair: [1, 'a'],
      at: '2024-05-06T07:08:09.123456Z',
      big: 2n ** 100n,
    });
  });

  it('a raised ValueError arrives as the TaskError the JSON path gives', async () => {
    const result = await pair.app.sendTask('fail', ['nope']);
    const err: unknown = await result.get({ timeout: 15_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).excType).toBe('ValueError');
    expect((err as TaskError).excModule).toBe('builtins');
    expect((err as TaskError).excArgs).toEqual(['nope']);
    expect(String(err)).toBe('ValueError: nope');
  });

  it('without pickle in the accept list the rpc:// wait rejects at once with ContentDisallowed naming the task', async () => {
    const strict = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
    try {
      const result = await strict.sendTask('add', [2, 3]);
      // The deadline is far beyond the test's own timeout: only an early rejection passes.
      const err: unknown = await result.get({ timeout: 120_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ContentDisallowedError);
      expect((err as Error).message).toBe(
        `result of task ${result.id}: Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)`,
      );
      // Asked again, the answer is the same (the no-ack reply is gone; nothing to wait for).
      await expect(result.get({ timeout: 120_000 })).rejects.toBe(err);
    } finally {
      await strict.close();
    }
  }, 30_000);
});

describe('a pickled result on amqp:// (Celery 3.1 / 4.4 AMQP backend layout)', () => {
  const ids: string[] = [];

  afterAll(async () => {
    await runPeer(['delete-queue', ...ids]);
  }, 30_000);

  it('without pickle accepted: the wait rejects with ContentDisallowed and the result stays in its queue', async () => {
    const id = newTaskId();
    ids.push(id);
    const stored = await runPeer(['store', id, 'SUCCESS', '{"n": 1}', '--serializer', 'pickle']);
    expect(stored.code, stored.stderr).toBe(0);
    const strict = new AMQPBackend({ connection: BROKER_URL });
    try {
      const err: unknown = await strict.waitFor(id, { timeout: 120_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ContentDisallowedError);
      expect((err as Error).message).toMatch(new RegExp(`^result of task ${id}: Refusing`));
      await expect(strict.getTaskMeta(id)).rejects.toBeInstanceOf(ContentDisallowedError);
    } finally {
      await strict.close();
    }
    const state = await runPeer(['inspect-queue', id]);
    expect(state.lines[0]).toMatchObject({ exists: true, messages: 1 });
    // With pickle accepted the same message is read.
    const lenient = new AMQPBackend({
      connection: BROKER_URL,
      settings: { accept_content: ['pickle', 'json'] },
    });
    try {
      expect(await new AsyncResult(id, lenient).get({ timeout: 15_000 })).toEqual({ n: 1 });
    } finally {
      await lenient.close();
    }
  }, 30_000);
});
