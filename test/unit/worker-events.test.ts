/**
 * Monitoring events on memory://: what a listener on the `celeryev` topic exchange sees from
 * a Node worker and from the app (`task-sent`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { Connection } from '../../src/kombu/connection.js';
import { Consumer } from '../../src/kombu/consumer.js';
import { Exchange } from '../../src/kombu/exchange.js';
import { Queue } from '../../src/kombu/queue.js';
import { cleanupStack, uid, waitUntil } from '../fixture.js';
import { dropQueue, listenToEvents, send, startWorker } from '../worker-fixture.js';

const URL = 'memory://';

describe('Worker events (memory://)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('worker-online, worker-heartbeat every interval, worker-offline, with the fields Celery sends', async () => {
    const log = await listenToEvents(URL, cleanups);
    const hostname = `${uid('node')}@test`;
    const { worker } = await startWorker(cleanups, {}, { hostname, heartbeat: true, heartbeatInterval: 50 });
    await waitUntil(() => log.of('worker-heartbeat').length >= 2, { what: 'two heartbeats' });
    await worker.close();
    await waitUntil(() => log.of('worker-offline').length === 1, { what: 'worker-offline' });
    const mine = log.events.filter((e) => e.hostname === hostname);
    expect(mine[0]?.type).toBe('worker-online');
    expect(mine.at(-1)?.type).toBe('worker-offline');
    const hb = log.of('worker-heartbeat')[0];
    expect(hb).toMatchObject({
      hostname,
      pid: process.pid,
      freq: 0.05,
      active: 0,
      processed: 0,
      sw_ident: 'celery-amqp-backend',
      sw_ver: expect.any(String),
      sw_sys: expect.any(String),
      utcoffset: expect.any(Number),
      loadavg: [expect.any(Number), expect.any(Number), expect.any(Number)],
    });
    expect(hb?.timestamp).toBeGreaterThan(Date.now() / 1000 - 60);
    // The Lamport clock moves forward with every event.
    const clocks = mine.map((e) => e.clock);
    expect(clocks).toEqual([...clocks].sort((a, b) => a - b));
    expect(new Set(clocks).size).toBe(clocks.length);
  });

  it('task events with -E: received -> started -> succeeded, and failed with the exception', async () => {
    const log = await listenToEvents(URL, cleanups);
    const { client } = await startWorker(
      cleanups,
      {
        add: ([a, b]) => Number(a) + Number(b),
        fail: () => {
          throw new RangeError('bad');
        },
      },
      { sendTaskEvents: true },
    );
    const ok = await send(client, 'add', [2, 3]);
    await ok.get();
    const bad = await send(client, 'fail');
    await bad.error();
    await waitUntil(() => log.of('task-failed').length === 1, { what: 'task-failed' });
    const forOk = log.events.filter((e) => e['uuid'] === ok.id).map((e) => e.type);
    expect(forOk).toEqual(['task-received', 'task-started', 'task-succeeded']);
    expect(log.of('task-received')[0]).toMatchObject({
      uuid: ok.id,
      name: 'add',
      args: '[2, 3]',
      kwargs: '{}',
      retries: 0,
      eta: null,
      expires: null,
      root_id: ok.id,
      parent_id: null,
    });
    expect(log.of('task-succeeded')[0]).toMatchObject({
      uuid: ok.id,
      result: '5',
      runtime: expect.any(Number),
    });
    expect(log.of('task-failed')[0]).toMatchObject({
      uuid: bad.id,
      exception: "ValueError('bad')",
      traceback: expect.stringContaining('RangeError: bad'),
    });
  });

  it('without -E no task events are sent; enableEvents() turns them on at run time', async () => {
    const log = await listenToEvents(URL, cleanups);
    const { client, worker } = await startWorker(cleanups, { t: () => 1 });
    const quiet = await send(client, 't');
    await quiet.get();
    worker.enableEvents();
    const loud = await send(client, 't');
    await loud.get();
    await waitUntil(() => log.of('task-succeeded').length === 1);
    expect(log.events.some((e) => e['uuid'] === quiet.id)).toBe(false);
    expect(log.of('task-succeeded')[0]?.['uuid']).toBe(loud.id);
  });

  /** Every task event message on celeryev (routing key and body), as it arrives. */
  async function taskEventMessages(): Promise<Array<{ key: string; body: unknown }>> {
    const conn = new Connection(URL);
    cleanups.push(() => conn.close());
    const messages: Array<{ key: string; body: unknown }> = [];
    const consumer = new Consumer(await conn.channel(), {
      queues: [
        new Queue(uid('multi'), {
          exchange: new Exchange('celeryev', { type: 'topic' }),
          routingKey: 'task.#',
          durable: false,
          autoDelete: true,
        }),
      ],
      noAck: true,
      onMessage: (m) => messages.push({ key: m.deliveryInfo.routingKey, body: m.payload }),
    });
    await consumer.consume();
    return messages;
  }

  it('task events of one turn of the event loop go out together on task.multi', async () => {
    const messages = await taskEventMessages();
    const { client } = await startWorker(cleanups, { t: () => 1 }, { sendTaskEvents: true });
    await (await send(client, 't')).get();
    await waitUntil(() => messages.length > 0);
    expect(new Set(messages.map((m) => m.key))).toEqual(new Set(['task.multi']));
  });

  it("a task's events over several turns of the event loop go out in one task.multi message", async () => {
    const messages = await taskEventMessages();
    const batches = (): unknown[][] => messages.map(({ body }) => (Array.isArray(body) ? body : [body]));
    // The handler ends some turns after it started: received and started are buffered in
    // one turn, succeeded in a later one; the worker's flush delay sends them together.
    const later = async (): Promise<number> => {
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      return 1;
    };
    const { client } = await startWorker(cleanups, { t: later }, { sendTaskEvents: true });
    const r = await send(client, 't');
    await r.get();
    await waitUntil(() =>
      batches()
        .flat()
        .some((e) => (e as { type?: string }).type === 'task-succeeded'),
    );
    const types = batches().map((b) => b.map((e) => (e as { type?: string }).type));
    expect(types).toEqual([['task-received', 'task-started', 'task-succeeded']]);
  });

  it('the app sends task-sent when task_send_sent_event is set', async () => {
    const log = await listenToEvents(URL, cleanups);
    const queue = uid('sent');
    const app = new Celery({
      broker: URL,
      settings: { task_default_queue: queue, task_send_sent_event: true },
    });
    cleanups.push(() => dropQueue(URL, queue));
    cleanups.push(() => app.close());
    const r = await send(app, 'tasks.add', [1, 2], {}, { ignoreResult: true });
    await waitUntil(() => log.of('task-sent').length === 1, { what: 'task-sent' });
    expect(log.of('task-sent')[0]).toMatchObject({
      uuid: r.id,
      name: 'tasks.add',
      args: '[1, 2]',
      kwargs: '{}',
      retries: 0,
      queue,
      exchange: '',
      routing_key: queue,
      hostname: expect.stringMatching(/^gen\d+@/),
    });
    const plain = new Celery({ broker: URL, settings: { task_default_queue: queue } });
    cleanups.push(() => plain.close());
    await send(plain, 'tasks.add', [3, 4], {}, { ignoreResult: true });
    const again = await send(app, 'tasks.add', [5, 6], {}, { ignoreResult: true });
    await waitUntil(() => log.of('task-sent').length === 2);
    expect(log.of('task-sent')[1]?.['uuid']).toBe(again.id);
  });
});
