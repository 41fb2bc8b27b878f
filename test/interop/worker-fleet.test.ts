/**
 * A Node worker as a member of a Celery 5.2 fleet on RabbitMQ, seen and driven by Celery's
 * own tools: `celery inspect` / `celery control`, an EventReceiver feeding
 * `celery.events.state.State`, and a Python client calling tasks that retry or run out of
 * time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import { SoftTimeLimitExceeded, Worker } from '../../src/celery/worker.js';
import { silentLogger } from '../../src/logger.js';
import { BROKER_URL, newTaskId, uid, waitUntil } from '../fixture.js';
import { dropQueue, send } from '../worker-fixture.js';
import { runCeleryClient } from './python.js';
import { celery, jsonReply, spawnPython } from './python-stream.js';

const queue = uid('node-fleet');
const hostname = `${uid('node')}@interop`;
const ENV = { CELERY_BROKER_URL: BROKER_URL, CELERY_QUEUE: queue };

/** Gates of `hold` calls still running, by their first argument. */
const gates = new Map<string, () => void>();
const aborts: unknown[] = [];
const ran: unknown[] = [];

let app: Celery;
let worker: Worker;

beforeAll(async () => {
  app = new Celery({ broker: BROKER_URL, settings: { task_default_queue: queue } });
  worker = new Worker(app, {
    queue,
    hostname,
    concurrency: 4,
    sendTaskEvents: true,
    logger: silentLogger,
    tasks: {
      add: ([a, b]) => Number(a) + Number(b),
      fail: ([msg]) => {
        const e = new Error(String(msg));
        e.name = 'ValueError';
        throw e;
      },
      record: ([x]) => ran.push(x),
      hold: ([key], _k, ctx) =>
        new Promise((resolve, reject) => {
          gates.set(String(key), () => resolve(`released ${String(key)}`));
          ctx.signal.addEventListener('abort', () => {
            aborts.push(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        }),
      flaky: (_a, _k, ctx) => (ctx.retries < 2 ? ctx.retry({ countdown: 0.1 }) : { retries: ctx.retries }),
      soft: (_a, _k, ctx) =>
        new Promise((resolve) =>
          ctx.signal.addEventListener('abort', () =>
            resolve(ctx.signal.reason instanceof SoftTimeLimitExceeded ? 'soft limit seen' : 'other'),
          ),
        ),
      hang: () => new Promise(() => undefined),
    },
  });
  await worker.start();
}, 30_000);

afterAll(async () => {
  for (const g of gates.values()) g();
  await worker?.close({ cold: true });
  await app?.close();
  await dropQueue(BROKER_URL, queue);
});

/** `celery -A celery_app <command> <action> ... -d <node> --json --timeout 5`. */
async function remote(command: 'inspect' | 'control', ...args: string[]) {
  const out = await celery([command, ...args, '-d', hostname, '--json', '--timeout', '5'], ENV);
  expect(out.code, out.stderr).toBe(0);
  return jsonReply(out)?.[hostname];
}

describe('celery inspect / control against a Node worker (RabbitMQ, python3-celery 5.2)', () => {
  it('inspect ping lists the Node worker with pong', async () => {
    expect(await remote('inspect', 'ping')).toEqual({ ok: 'pong' });
  });

  it('inspect registered lists its tasks', async () => {
    expect(await remote('inspect', 'registered')).toEqual([
      'add',
      'fail',
      'flaky',
      'hang',
      'hold',
      'record',
      'soft',
    ]);
  });

  it('inspect active shows a running Node task', async () => {
    const key = uid('active');
    const r = await send(app, 'hold', [key]);
    await waitUntil(() => gates.has(key));
    const active = (await remote('inspect', 'active')) as Array<Record<string, unknown>>;
    expect(active).toEqual([expect.objectContaining({ id: r.id, name: 'hold', args: [key], hostname })]);
    gates.get(key)?.();
    expect(await r.get()).toBe(`released ${key}`);
  });

  it('control revoke <id>: the task, arriving later, is not run and is stored REVOKED', async () => {
    const id = newTaskId();
    expect(await remote('control', 'revoke', id)).toEqual({ ok: `tasks ${id} flagged as revoked` });
    const out = await runCeleryClient([
      'send',
      'record',
      '["revoked"]',
      '--queue',
      queue,
      '--task-id',
      id,
      '--timeout',
      '15',
      '--propagate',
    ]);
    expect(out.lines.at(-1)).toMatchObject({
      status: 'REVOKED',
      raised: { exc_type: 'TaskRevokedError', exc_module: 'celery.exceptions', exc_message: ['revoked'] },
    });
    expect(ran).not.toContain('revoked');
  });

  it('control revoke of a task held for its eta: REVOKED without waiting for the eta', async () => {
    const id = newTaskId();
    const client = runCeleryClient([
      'send',
      'record',
      '["held"]',
      '--queue',
      queue,
      '--task-id',
      id,
      '--countdown',
      '60',
      '--timeout',
      '20',
      '--propagate',
    ]);
    await waitUntil(() => worker.held === 1, { what: 'the task held for its eta', timeout: 15_000 });
    expect(await remote('control', 'revoke', id)).toEqual({ ok: `tasks ${id} flagged as revoked` });
    const out = await client;
    expect(out.lines.at(-1)).toMatchObject({ status: 'REVOKED', raised: { exc_message: ['revoked'] } });
    expect(ran).not.toContain('held');
  });

  it('control terminate (revoke --terminate): the running handler sees its signal abort; REVOKED terminated', async () => {
    const key = uid('term');
    const id = newTaskId();
    const client = runCeleryClient([
      'send',
      'hold',
      JSON.stringify([key]),
      '--queue',
      queue,
      '--task-id',
      id,
      '--timeout',
      '20',
      '--propagate',
    ]);
    await waitUntil(() => gates.has(key), { timeout: 15_000 });
    expect(await remote('control', 'terminate', 'SIGTERM', id)).toEqual({ ok: `terminate: ${id}` });
    const out = await client;
    expect(out.lines.at(-1)).toMatchObject({ status: 'REVOKED', raised: { exc_message: ['terminated'] } });
    expect(aborts.at(-1)).toMatchObject({ excType: 'TaskRevokedError', excArgs: ['terminated'] });
  });
});

describe('mingle: a Celery worker starting up says hello (RabbitMQ)', () => {
  it('the Node worker answers hello with its revoked ids and clock, in the shape Celery merges', async () => {
    const mine = newTaskId();
    worker.revoke([mine]);
    const code = [
      'import json, sys',
      'from celery.utils.collections import LimitedSet',
      'from celery_app import app',
      `r = app.control.inspect(destination=[${JSON.stringify(hostname)}], timeout=5).hello('other@py', revoked=['from-python'])`,
      `reply = r[${JSON.stringify(hostname)}]`,
      's = LimitedSet(maxlen=100)',
      "s.update(reply['revoked'])",
      "print(json.dumps({'clock': reply['clock'], 'revoked': sorted(s)}))",
    ].join('\n');
    const out = await (await spawnPython(['-c', code], { env: ENV })).done;
    expect(out.code, out.stderr).toBe(0);
    const reply = out.lines.at(-1) as { clock: number; revoked: string[] };
    expect(reply.clock).toBeGreaterThan(0);
    expect(reply.revoked).toEqual(expect.arrayContaining([mine, 'from-python']));
    expect((await worker.control('revoked')) as string[]).toContain('from-python');
  });
});

describe('celery events: State fed by an EventReceiver sees the Node worker (RabbitMQ)', () => {
  it('online with heartbeats and alive; a task received -> started -> succeeded, a failed one with its exception', async () => {
    const monitor = await spawnPython(['celery_monitor.py', 'events', '--seconds', '6', '--node', hostname], {
      env: ENV,
    });
    await monitor.until((l) => typeof l === 'object' && l !== null && 'ready' in l);
    const ok = await send(app, 'add', [2, 3]);
    const bad = await send(app, 'fail', ['boom']);
    expect(await ok.get()).toBe(5);
    await bad.error();
    const out = await monitor.done;
    expect(out.code, out.stderr).toBe(0);
    const events = out.lines.flatMap((l) =>
      typeof l === 'object' && l !== null && 'event' in l
        ? [(l as { event: Record<string, unknown> }).event]
        : [],
    );
    const state = (out.lines.at(-1) as { state: Record<string, unknown> }).state as {
      alive: string[];
      workers: Record<string, { alive: boolean; heartbeats: number; sw_ident: string }>;
      tasks: Record<
        string,
        { state: string; name: string; result: unknown; exception: unknown; worker: string }
      >;
    };
    // The receiver's wakeup asks for a heartbeat at once; then one every 2 s.
    expect(events.filter((e) => e['type'] === 'worker-heartbeat').length).toBeGreaterThanOrEqual(2);
    expect(state.alive).toContain(hostname);
    expect(state.workers[hostname]).toMatchObject({ alive: true, sw_ident: 'celery-amqp-backend' });
    expect(events.filter((e) => e['uuid'] === ok.id).map((e) => e['type'])).toEqual([
      'task-received',
      'task-started',
      'task-succeeded',
    ]);
    expect(state.tasks[ok.id]).toMatchObject({
      state: 'SUCCESS',
      name: 'add',
      result: '5',
      worker: hostname,
    });
    expect(state.tasks[bad.id]).toMatchObject({ state: 'FAILURE', exception: "ValueError('boom')" });
  });
});

describe('a Python client calling Node tasks that retry or run out of time (RabbitMQ)', () => {
  it('retries twice: RETRY, RETRY, then SUCCESS with retries == 2', async () => {
    const out = await runCeleryClient([
      'send',
      'flaky',
      '[]',
      '--queue',
      queue,
      '--timeout',
      '20',
      '--events',
    ]);
    expect(out.code, out.stderr).toBe(0);
    const states = out.lines.flatMap((l) =>
      typeof l === 'object' && l !== null && 'event' in l
        ? [(l as { event: { status: string } }).event.status]
        : [],
    );
    expect(states).toEqual(['RETRY', 'RETRY', 'SUCCESS']);
    expect(out.lines.at(-1)).toMatchObject({ status: 'SUCCESS', result: { retries: 2 } });
  });

  it('over its soft limit (sent by Python as timelimit [hard, soft]) the task sees its signal abort', async () => {
    const out = await runCeleryClient([
      'send',
      'soft',
      '[]',
      '--queue',
      queue,
      '--timeout',
      '20',
      '--soft-time-limit',
      '0.3',
    ]);
    expect(out.lines.at(-1)).toMatchObject({ status: 'SUCCESS', result: 'soft limit seen' });
  });

  it('over its hard limit (sent by Python) it is stored FAILURE TimeLimitExceeded; Python raises it', async () => {
    const out = await runCeleryClient([
      'send',
      'hang',
      '[]',
      '--queue',
      queue,
      '--timeout',
      '20',
      '--time-limit',
      '0.5',
      '--propagate',
    ]);
    expect(out.lines.at(-1)).toMatchObject({
      status: 'FAILURE',
      raised: { exc_type: 'TimeLimitExceeded', exc_module: 'billiard.exceptions', exc_message: [0.5] },
    });
  });

  it('over its hard limit it is stored FAILURE TimeLimitExceeded and the worker keeps serving', async () => {
    const node = await send(app, 'hang', [], {}, { timeLimit: 0.5 });
    const err = await node.error();
    expect(err).toMatchObject({
      excType: 'TimeLimitExceeded',
      excModule: 'billiard.exceptions',
      excArgs: [0.5],
    });
    const out = await runCeleryClient(['send', 'add', '[20, 22]', '--queue', queue, '--timeout', '20']);
    expect(out.lines.at(-1)).toMatchObject({ status: 'SUCCESS', result: 42 });
  });
});
