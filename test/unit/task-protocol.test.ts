/**
 * `task_protocol: 1`: sendTask speaks Celery 3.1's message (a dict body, empty headers),
 * with JSON or pickle bodies, and the Node Worker runs it and answers; on the embedded broker.
 * The real Celery 5 worker reading the same messages is test/interop/protocol-v1-celery.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import type { CeleryAppSettings } from '../../src/celery/app.js';
import type { TaskHandler } from '../../src/celery/worker.js';
import { ArgumentError } from '../../src/errors.js';
import { Consumer } from '../../src/kombu/consumer.js';
import type { Message } from '../../src/kombu/message.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { dropQueue, startWorker } from '../worker-fixture.js';
import type { WorkerSetup } from '../worker-fixture.js';

const cleanups = cleanupStack();
afterEach(() => cleanups.run());

const TASKS: Record<string, TaskHandler> = {
  add: ([a, b]) => Number(a) + Number(b),
  big: ([n]) => (typeof n === 'bigint' ? String(n * 2n) : null),
  who: (_args, kwargs, ctx) => ({ kwargs, retries: ctx.retries, group: ctx.request.group }),
};

/** A client and a worker app on one fresh memory:// queue; `settings` go to both. */
function setup(settings: Partial<CeleryAppSettings>): Promise<WorkerSetup> {
  return startWorker(cleanups, TASKS, { appSettings: settings });
}

/** The next message published to `queue`, read by a consumer of its own (the worker is not started). */
async function capture(client: Celery, queue: string): Promise<() => Promise<Message>> {
  const ch = await client.connection.channel();
  cleanups.push(() => ch.close());
  const got: Message[] = [];
  const consumer = new Consumer(ch, {
    queues: [client.taskQueue(queue)],
    accept: ['json', 'pickle'],
    onMessage: (m) => void got.push(m),
  });
  await consumer.consume();
  return async () => waitUntil(() => got[0], { what: 'the task message' });
}

describe('task_protocol: 1', () => {
  it('sends Celery 3.1’s dict body with empty headers (JSON)', async () => {
    const queue = uid('v1raw');
    const client = new Celery({
      broker: 'memory://',
      settings: { task_default_queue: queue, task_protocol: 1 },
    });
    cleanups.push(() => client.close());
    cleanups.push(() => dropQueue('memory://', queue));
    await client.taskQueue(queue).bind(client.connection).declare();
    const next = await capture(client, queue);
    const r = await client.sendTask('tasks.add', [2, 3], { z: 1 }, { countdown: 10, timeLimit: 5 });
    const m = await next();
    expect(m.properties.contentType).toBe('application/json');
    expect(m.properties.headers ?? {}).toEqual({});
    expect(m.properties.correlationId).toBe(r.id);
    expect(m.properties.replyTo).toBe(client.oid);
    expect(m.properties.expiration).toBeUndefined();
    expect(m.payload).toMatchObject({
      task: 'tasks.add',
      id: r.id,
      args: [2, 3],
      kwargs: { z: 1 },
      retries: 0,
      utc: true,
      timelimit: [5, null],
      taskset: null,
    });
    expect(typeof (m.payload as { eta: unknown }).eta).toBe('string');
  });

  it('sends a pickled body with task_serializer: pickle', async () => {
    const queue = uid('v1pk');
    const client = new Celery({
      broker: 'memory://',
      settings: { task_default_queue: queue, task_protocol: 1, task_serializer: 'pickle' },
    });
    cleanups.push(() => client.close());
    cleanups.push(() => dropQueue('memory://', queue));
    await client.taskQueue(queue).bind(client.connection).declare();
    const next = await capture(client, queue);
    const r = await client.sendTask('tasks.add', [2, 2n ** 70n]);
    const m = await next();
    expect(m.properties.contentType).toBe('application/x-python-serialize');
    expect(m.properties.contentEncoding).toBe('binary');
    expect(m.body.subarray(0, 2)).toEqual(Buffer.from([0x80, 0x02]));
    expect(m.payload).toMatchObject({ task: 'tasks.add', id: r.id, args: [2, 2n ** 70n] });
  });

  it('the Node Worker runs v1 JSON messages and answers', async () => {
    const { client } = await setup({ task_protocol: 1 });
    expect(await (await client.sendTask('add', [2, 3])).get({ timeout: 5000 })).toBe(5);
    const who = await client.sendTask('who', [], { k: 'v' }, { groupId: 'g-1' });
    expect(await who.get({ timeout: 5000 })).toEqual({ kwargs: { k: 'v' }, retries: 0, group: 'g-1' });
  });

  it('the Node Worker runs v1 pickle messages when accept_content names pickle', async () => {
    const { client } = await setup({
      task_protocol: 1,
      task_serializer: 'pickle',
      accept_content: ['pickle', 'json'],
    });
    expect(await (await client.sendTask('add', [2, 3])).get({ timeout: 5000 })).toBe(5);
    // A big int survives the pickle body (JSON cannot carry it); the result comes back as JSON.
    const big = await client.sendTask('big', [2n ** 60n]);
    expect(await big.get({ timeout: 5000 })).toBe(String(2n ** 61n));
  });

  it('refuses pickle task messages when accept_content does not name pickle', async () => {
    const { client, queue, worker } = await setup({ accept_content: ['json'] });
    const invalid = new Promise<Error>((resolve) => worker.once('invalid', resolve));
    const sender = new Celery({
      broker: client.connection,
      settings: { task_default_queue: queue, task_serializer: 'pickle', task_protocol: 1 },
    });
    cleanups.push(() => sender.close());
    await sender.sendTask('add', [1, 1]);
    const err = await invalid;
    expect(err.message).toMatch(/Refusing to deserialize untrusted content of type pickle/);
    expect(worker.counters.received).toBe(0);
  });

  it('refuses another protocol number', () => {
    expect(() => new Celery({ broker: 'memory://', settings: { task_protocol: 3 as 1 } })).toThrow(
      ArgumentError,
    );
  });
});
