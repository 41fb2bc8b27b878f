/**
 * Self-test of the Python peers, Python to Python on the real broker: the interop suites
 * trust these peers as the reference, so they must first be shown to behave as docs/wire.md says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTaskId, uid, waitUntil } from '../fixture.js';
import { listTable, queueFlags, rabbitmqctl } from '../rabbitmq-admin.js';
import { runCeleryClient, runPeer, startCeleryWorker } from './python.js';
import type { CeleryWorker, PeerResult } from './python.js';

const used: string[] = [];

/** A fresh task id whose queue is deleted after the suite. */
function trackedId(): string {
  const id = newTaskId();
  used.push(id);
  return id;
}

function rk(id: string): string {
  return id.replace(/-/g, '');
}

function ok(r: PeerResult): PeerResult {
  if (r.code !== 0) throw new Error(`peer exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function store(id: string, status: string, result: unknown, ...extra: string[]): Promise<void> {
  ok(await runPeer(['store', id, status, JSON.stringify(result), ...extra]));
}

async function messages(id: string): Promise<unknown> {
  const r = ok(await runPeer(['inspect-queue', id]));
  const line = r.lines[0] as { exists: boolean; messages?: number };
  return line.exists ? line.messages : 'missing';
}

afterAll(async () => {
  for (let i = 0; i < used.length; i += 200) {
    await runPeer(['delete-queue', ...used.slice(i, i + 200)]);
  }
}, 60_000);

describe('amqp_backend_peer (Celery 4.4 AMQPBackend shape)', () => {
  it('store then get: the latest is requeued, so a second get sees it too', async () => {
    const id = trackedId();
    await store(id, 'SUCCESS', { answer: 42 });
    const first = ok(await runPeer(['get', id]));
    expect(first.lines[0]).toEqual({
      task_id: id,
      status: 'SUCCESS',
      result: { answer: 42 },
      traceback: null,
      children: null,
    });
    const second = ok(await runPeer(['get', id, '--show-properties']));
    expect(second.lines[0]).toMatchObject({ status: 'SUCCESS', result: { answer: 42 } });
    expect(second.lines[1]).toMatchObject({
      properties: {
        content_type: 'application/json',
        content_encoding: 'utf-8',
        delivery_mode: 2,
        correlation_id: id,
        priority: 0,
        reply_to: null,
        exchange: 'celeryresults',
        routing_key: rk(id),
      },
    });
    expect(await messages(id)).toBe(1);
  });

  it('get on an unknown task reports PENDING', async () => {
    const id = trackedId();
    const r = ok(await runPeer(['get', id]));
    expect(r.lines[0]).toEqual({ status: 'PENDING', result: null });
  });

  it('fast-forwards the backlog: STARTED then SUCCESS leaves only SUCCESS', async () => {
    const id = trackedId();
    await store(id, 'STARTED', { pid: 1, hostname: 'w@h' });
    await store(id, 'SUCCESS', 'done', '--correlation-id', 'corr-1');
    expect(await messages(id)).toBe(2);
    const r = ok(await runPeer(['get', id, '--show-properties']));
    expect(r.lines[0]).toMatchObject({ status: 'SUCCESS', result: 'done' });
    expect(r.lines[1]).toMatchObject({ properties: { correlation_id: 'corr-1' } });
    expect(await messages(id)).toBe(1);
  });

  it('raises BacklogLimitExceeded past the limit (superseded messages already acked)', async () => {
    const id = trackedId();
    ok(
      await runPeer(['store-many'], {
        input: ['RECEIVED', 'STARTED', 'RETRY', 'SUCCESS']
          .map((status) => JSON.stringify({ task_id: id, status, result: null }))
          .join('\n'),
      }),
    );
    const r = await runPeer(['get', id, '--backlog-limit', '2']);
    expect(r.code).toBe(2);
    expect(r.lines[0]).toEqual({ error: 'BacklogLimitExceeded', task_id: id });
    // As in Celery: RECEIVED was acked when STARTED superseded it; the unacked rest is requeued.
    expect(await messages(id)).toBe(3);
    const full = ok(await runPeer(['get', id]));
    expect(full.lines[0]).toMatchObject({ status: 'SUCCESS' });
    expect(await messages(id)).toBe(1);
  });

  it('wait consumes until a READY state and times out with exit 3', async () => {
    const id = trackedId();
    await store(id, 'STARTED', { pid: 2 });
    const timedOut = await runPeer(['wait', id, '--timeout', '0.5']);
    expect(timedOut.code).toBe(3);
    expect(timedOut.lines[0]).toEqual({ error: 'TimeoutError', message: 'The operation timed out.' });

    const id2 = trackedId();
    const waiting = runPeer(['wait', id2, '--timeout', '10']);
    // Stored once the peer consumes: the consume path, not a get of what is already there.
    await waitUntil(
      async () =>
        (await listTable('queues', '/', ['name', 'consumers'])).some(([n, c]) => n === rk(id2) && c !== '0'),
      { interval: 100, what: 'the peer consuming its queue' },
    );
    await store(id2, 'STARTED', { pid: 3 });
    await store(id2, 'SUCCESS', [1, 2, 3]);
    const r = ok(await waiting);
    expect(r.lines[0]).toMatchObject({ task_id: id2, status: 'SUCCESS', result: [1, 2, 3] });
  });

  it('wait-many collects 120 results stored in bulk by store-many', async () => {
    const ids = Array.from({ length: 120 }, () => trackedId());
    const input = ids
      .map((id, i) => JSON.stringify({ task_id: id, status: 'SUCCESS', result: i }))
      .join('\n');
    const stored = ok(await runPeer(['store-many'], { input }));
    expect(stored.lines[0]).toMatchObject({ stored: 120 });
    const r = ok(await runPeer(['wait-many', ...ids, '--timeout', '20']));
    const got = new Map<string, unknown>();
    for (const line of r.lines as { task_id: string; meta: { result: unknown } }[]) {
      got.set(line.task_id, line.meta.result);
    }
    expect(got.size).toBe(120);
    ids.forEach((id, i) => expect(got.get(id)).toBe(i));
  });

  it('wait-many exits 3 and names the missing ids', async () => {
    const [a, b] = [trackedId(), trackedId()];
    await store(a, 'SUCCESS', 1);
    const r = await runPeer(['wait-many', a, b, '--timeout', '0.5']);
    expect(r.code).toBe(3);
    expect(r.lines[0]).toMatchObject({ task_id: a });
    expect(r.lines[1]).toEqual({ error: 'TimeoutError', missing: [b] });
  });

  it.each([
    ['msgpack', [], 'application/x-msgpack', 'binary', {}],
    ['yaml', [], 'application/x-yaml', 'utf-8', {}],
    ['json', ['--compression', 'zlib'], 'application/json', 'utf-8', { compression: 'application/x-gzip' }],
    [
      'msgpack',
      ['--compression', 'zlib'],
      'application/x-msgpack',
      'binary',
      { compression: 'application/x-gzip' },
    ],
  ] as const)('%s %j round trip', async (serializer, extra, contentType, encoding, headers) => {
    const id = trackedId();
    const value = { s: 'héllo', n: [1, 2.5, null, true], nested: { k: 'v' } };
    await store(id, 'SUCCESS', value, '--serializer', serializer, ...extra);
    const r = ok(await runPeer(['get', id, '--show-properties']));
    expect(r.lines[0]).toMatchObject({ status: 'SUCCESS', result: value });
    expect(r.lines[1]).toMatchObject({
      properties: { content_type: contentType, content_encoding: encoding, headers },
    });
  });

  it('refuses content outside --accept with ContentDisallowed (exit 4)', async () => {
    const id = trackedId();
    await store(id, 'SUCCESS', 1, '--serializer', 'msgpack');
    const r = await runPeer(['get', id, '--accept', 'json']);
    expect(r.code).toBe(4);
    expect(r.lines[0]).toMatchObject({ error: 'ContentDisallowed' });
  });

  it('declares persistent and transient queues with the right flags', async () => {
    const persistent = trackedId();
    await store(persistent, 'SUCCESS', 1, '--expires', '60');
    const transient = trackedId();
    const exchange = `celeryresults.transient.${rk(transient)}`;
    await store(transient, 'SUCCESS', 1, '--transient', '--exchange', exchange, '--no-expires');
    const get = ok(
      await runPeer([
        'get',
        transient,
        '--transient',
        '--exchange',
        exchange,
        '--no-expires',
        '--show-properties',
      ]),
    );
    expect(get.lines[1]).toMatchObject({ properties: { delivery_mode: 1, exchange } });

    expect((await queueFlags()).get(rk(persistent))).toEqual({
      durable: 'true',
      autoDelete: 'true',
      args: '[{"x-expires",60000}]',
    });
    expect((await queueFlags()).get(rk(transient))).toEqual({
      durable: 'false',
      autoDelete: 'true',
      args: '[]',
    });

    // A mismatched redeclaration is refused by the broker (406), as with Celery.
    const mismatch = await runPeer(['declare', persistent, '--expires', '61']);
    expect(mismatch.code).toBe(5);
    expect(mismatch.lines[0]).toMatchObject({ code: 406 });
    ok(await runPeer(['delete-queue', transient, '--with-exchange', '--exchange', exchange]));
  });

  it('stores FAILURE from a real exception, Celery 4.x and 3.1 forms', async () => {
    const id = trackedId();
    await store(
      id,
      'FAILURE',
      ['bad value', 7],
      '--exception-type',
      'ValueError',
      '--traceback',
      'Traceback...',
    );
    const r = ok(await runPeer(['get', id]));
    expect(r.lines[0]).toEqual({
      task_id: id,
      status: 'FAILURE',
      result: { exc_type: 'ValueError', exc_message: ['bad value', 7], exc_module: 'builtins' },
      traceback: 'Traceback...',
      children: null,
    });

    const legacy = trackedId();
    await store(legacy, 'FAILURE', ['boom'], '--exception-type', 'KeyError', '--legacy-exception');
    const l = ok(await runPeer(['get', legacy]));
    expect(l.lines[0]).toMatchObject({ result: { exc_type: 'KeyError', exc_message: "'boom'" } });

    const custom = trackedId();
    await store(custom, 'FAILURE', 'nope', '--exception-type', 'MyError', '--exception-module', 'proj.tasks');
    const c = ok(await runPeer(['get', custom]));
    expect(c.lines[0]).toMatchObject({
      result: { exc_type: 'MyError', exc_message: ['nope'], exc_module: 'proj.tasks' },
    });
  });
});

describe('Celery 5 worker and rpc:// client', () => {
  const queue = uid('peertest');
  let worker: CeleryWorker | undefined;

  beforeAll(async () => {
    worker = await startCeleryWorker({ queue });
  }, 40_000);

  afterAll(async () => {
    await worker?.stop();
    await rabbitmqctl(['delete_queue', queue]).catch(() => undefined);
  }, 30_000);

  it('add(2, 3) = 5', async () => {
    const r = ok(await runCeleryClient(['send', 'add', '[2, 3]', '--queue', queue]));
    expect(r.lines[0]).toMatchObject({ status: 'SUCCESS', result: 5, traceback: null });
  });

  it('fail raises ValueError with a traceback', async () => {
    const r = ok(await runCeleryClient(['send', 'fail', '["nope"]', '--queue', queue]));
    expect(r.lines[0]).toMatchObject({
      status: 'FAILURE',
      result: { exc_type: 'ValueError', exc_message: ['nope'], exc_module: 'builtins' },
    });
    expect((r.lines[0] as { traceback: string }).traceback).toContain('ValueError: nope');
  });

  it('progress reports the custom PROGRESS state before SUCCESS', async () => {
    const r = ok(await runCeleryClient(['send', 'progress', '[2]', '--queue', queue, '--events']));
    const events = (r.lines as { event?: { status: string; result: unknown } }[])
      .filter((l) => l.event)
      .map((l) => l.event);
    expect(events[0]).toMatchObject({ status: 'PROGRESS', result: { current: 1, total: 2 } });
    expect(events.at(-1)).toMatchObject({ status: 'SUCCESS', result: 2 });
    expect(r.lines.at(-1)).toMatchObject({ status: 'SUCCESS', result: 2 });
  });

  it('send-many collects a group of 50 natively', async () => {
    const r = ok(await runCeleryClient(['send-many', '50', '--queue', queue, '--timeout', '20']));
    expect(r.lines[0]).toMatchObject({ n: 50, ok: 50 });
  });
});
