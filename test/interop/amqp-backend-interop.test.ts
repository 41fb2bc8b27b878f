/**
 * The AMQP result backend against the Python peer (Celery 4.4's AMQPBackend re-created in
 * kombu) on the real RabbitMQ: Python stores and we read, we store and Python reads, with
 * every serializer, compression, durability and x-expires variant the wire allows.
 */
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import type { TaskMeta } from '../../src/celery/backend-types.js';
import { BacklogLimitExceeded, TaskError, TaskRevokedError } from '../../src/celery/exceptions.js';
import { AsyncResult, GroupResult, ResultSet } from '../../src/celery/result.js';
import { ChannelError, TimeoutError } from '../../src/errors.js';
import { BROKER_URL, newTaskId, uid } from '../fixture.js';
import { queueFlags } from '../rabbitmq-admin.js';
import { PYTHON, peerEnv, runPeer } from './python.js';
import type { PeerResult } from './python.js';

/** Queues to delete after the suite, and non-default exchanges to delete with them. */
const used: string[] = [];
const exchanges = new Set<string>();
const backends: AMQPBackend[] = [];

/** A fresh task id whose queue is deleted after the suite. */
function trackedId(): string {
  const id = newTaskId();
  used.push(id);
  return id;
}

function newExchange(prefix: string): string {
  const name = uid(prefix);
  exchanges.add(name);
  return name;
}

function rk(id: string): string {
  return id.replace(/-/g, '');
}

function backend(options: Omit<AMQPBackendOptions, 'connection'> = {}): AMQPBackend {
  const b = new AMQPBackend({ connection: BROKER_URL, ...options });
  backends.push(b);
  return b;
}

function ok(r: PeerResult): PeerResult {
  if (r.code !== 0) throw new Error(`peer exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function pyStore(id: string, status: string, result: unknown, ...extra: string[]): Promise<void> {
  ok(await runPeer(['store', id, status, JSON.stringify(result), ...extra]));
}

async function pyStoreMany(records: object[], ...extra: string[]): Promise<void> {
  ok(
    await runPeer(['store-many', ...extra], {
      input: records.map((r) => JSON.stringify(r)).join('\n') + '\n',
      timeoutMs: 60_000,
    }),
  );
}

async function pyGet(id: string, ...extra: string[]): Promise<{ meta: unknown; properties: unknown }> {
  const r = ok(await runPeer(['get', id, ...extra]));
  const props = r.lines[1] as { properties?: unknown } | undefined;
  return { meta: r.lines[0], properties: props?.properties };
}

async function queueState(id: string): Promise<{ exists: boolean; messages?: number; consumers?: number }> {
  const r = ok(await runPeer(['inspect-queue', id]));
  return r.lines[0] as { exists: boolean; messages?: number; consumers?: number };
}

/** Rehydrates a result dict with Celery's own `exception_to_python`, as a Python client would. */
function pythonRehydrate(resultDict: unknown): Promise<{ type: string; module: string; args: unknown[] }> {
  const script = [
    'import json, sys',
    'from celery import Celery',
    "app = Celery(backend='disabled://')",
    'from celery.backends.base import Backend',
    'exc = Backend(app).exception_to_python(json.load(sys.stdin))',
    "print(json.dumps({'type': type(exc).__name__, 'module': type(exc).__module__, 'args': list(exc.args)}))",
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', script], { env: peerEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`python exit ${code}: ${err}`));
      else resolve(JSON.parse(out) as { type: string; module: string; args: unknown[] });
    });
    child.stdin.end(JSON.stringify(resultDict));
  });
}

function meta(id: string, status: string, result: unknown, extra: Partial<TaskMeta> = {}): TaskMeta {
  return { task_id: id, status, result, traceback: null, children: null, ...extra };
}

/** A value that exercises every JSON type, nesting and non-ASCII text. */
const VALUE = { n: 42, f: 2.5, s: 'héllo ☃', list: [1, 'two', null, true, false], nested: { a: [] } };

afterAll(async () => {
  await Promise.allSettled(backends.map((b) => b.close()));
  for (let i = 0; i < used.length; i += 200) {
    await runPeer(['delete-queue', ...used.slice(i, i + 200)]);
  }
  for (const ex of exchanges) {
    await runPeer(['delete-queue', '--exchange', ex, '--with-exchange']);
  }
}, 120_000);

describe('Python stores, TypeScript reads', () => {
  const variants: Array<{ name: string; py: string[]; ts: Omit<AMQPBackendOptions, 'connection'> }> = [
    { name: 'json', py: [], ts: {} },
    { name: 'msgpack', py: ['--serializer', 'msgpack'], ts: { accept: ['json', 'msgpack'] } },
    { name: 'yaml', py: ['--serializer', 'yaml'], ts: { accept: ['json', 'yaml'] } },
    { name: 'json + zlib', py: ['--compression', 'zlib'], ts: {} },
    {
      name: 'msgpack + zlib',
      py: ['--serializer', 'msgpack', '--compression', 'zlib'],
      ts: { accept: ['json', 'msgpack'] },
    },
  ];

  for (const v of variants) {
    it(`${v.name}: getTaskMeta reads the latest without consuming it, waitFor then consumes it`, async () => {
      const b = backend(v.ts);
      const id = trackedId();
      await pyStore(id, 'SUCCESS', VALUE, ...v.py);
      expect(await b.getTaskMeta(id)).toEqual(meta(id, 'SUCCESS', VALUE));
      // Polling requeues the latest, so it is still there for the next reader.
      expect(await queueState(id)).toMatchObject({ exists: true, messages: 1 });
      expect(await b.waitFor(id, { timeout: 10_000 })).toEqual(meta(id, 'SUCCESS', VALUE));
    });
  }

  it('AsyncResult.get resolves with the value, the state getters follow, and any later read has it', async () => {
    const b = backend();
    const id = trackedId();
    const result = new AsyncResult<typeof VALUE>(id, b);
    expect(result.state).toBe('PENDING');
    await pyStore(id, 'SUCCESS', VALUE);
    expect(await result.get({ timeout: 10_000 })).toEqual(VALUE);
    expect(result.state).toBe('SUCCESS');
    expect(await result.ready()).toBe(true);
    expect(await result.successful()).toBe(true);
    // The wait consumed the message: a second get is answered from the kept meta, and a new
    // handle for the id from the backend's cache (ready results are final).
    expect(await result.get()).toEqual(VALUE);
    expect(await new AsyncResult(id, b).get({ timeout: 1000 })).toEqual(VALUE);
  });

  it('transient (durable false, delivery_mode 1) on its own exchange', async () => {
    const exchange = newExchange('ts-transient');
    const b = backend({ exchange, persistent: false });
    const id = trackedId();
    await pyStore(id, 'SUCCESS', 7, '--transient', '--exchange', exchange);
    expect(await b.getTaskMeta(id)).toEqual(meta(id, 'SUCCESS', 7));
    expect(await new AsyncResult(id, b).get({ timeout: 10_000 })).toBe(7);
  });

  it('FAILURE with a real Python exception (4.x form) rejects get with the rehydrated TaskError', async () => {
    const b = backend();
    const id = trackedId();
    const tb = 'Traceback (most recent call last):\n  File "tasks.py", line 3, in add\nValueError: bad value';
    await pyStore(id, 'FAILURE', ['bad value', 3], '--exception-type', 'ValueError', '--traceback', tb);
    const raw = await b.getTaskMeta(id);
    expect(raw.result).toEqual({
      exc_type: 'ValueError',
      exc_message: ['bad value', 3],
      exc_module: 'builtins',
    });
    const result = new AsyncResult(id, b);
    const err = await result.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    const te = err as TaskError;
    expect(te.excType).toBe('ValueError');
    expect(te.excModule).toBe('builtins');
    expect(te.excArgs).toEqual(['bad value', 3]);
    expect(te.traceback).toBe(tb);
    expect(te.message).toBe("('bad value', 3)");
    expect(result.state).toBe('FAILURE');
    expect(await result.failed()).toBe(true);
    // propagate: false hands the same error back as the value.
    expect(await result.get({ propagate: false })).toBe(te);
  });

  it('FAILURE with a user exception class keeps its module', async () => {
    const b = backend();
    const id = trackedId();
    await pyStore(
      id,
      'FAILURE',
      ['no such user'],
      '--exception-type',
      'UserMissing',
      '--exception-module',
      'app.errors',
    );
    const err = (await new AsyncResult(id, b).get({ timeout: 10_000 }).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect([err.excType, err.excModule, err.excArgs, err.pythonType]).toEqual([
      'UserMissing',
      'app.errors',
      ['no such user'],
      'app.errors.UserMissing',
    ]);
  });

  it('FAILURE in the Celery 3.1 form (--legacy-exception) rehydrates too', async () => {
    const b = backend();
    const id = trackedId();
    await pyStore(id, 'FAILURE', 'missing', '--exception-type', 'KeyError', '--legacy-exception');
    const err = (await new AsyncResult(id, b).get({ timeout: 10_000 }).catch((e: unknown) => e)) as TaskError;
    expect(err).toBeInstanceOf(TaskError);
    expect(err.excType).toBe('KeyError');
    expect(err.excModule).toBeNull();
    // 3.1 sends str(exc), which for KeyError is the repr of the key: the args are lost.
    expect(err.message).toBe("'missing'");
    expect(err.excArgs).toEqual(["'missing'"]);
  });

  it('REVOKED rejects with TaskRevokedError', async () => {
    const b = backend();
    const id = trackedId();
    await pyStore(
      id,
      'REVOKED',
      [],
      '--exception-type',
      'TaskRevokedError',
      '--exception-module',
      'celery.exceptions',
    );
    const err = await new AsyncResult(id, b).get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskRevokedError);
    expect((err as TaskRevokedError).state).toBe('REVOKED');
  });

  it('a custom state (PROGRESS) shows in getTaskMeta but never resolves waitFor', async () => {
    const b = backend();
    const id = trackedId();
    await pyStore(id, 'PROGRESS', { current: 3, total: 10 });
    expect(await b.getTaskMeta(id)).toEqual(meta(id, 'PROGRESS', { current: 3, total: 10 }));
    const result = new AsyncResult(id, b);
    expect(await result.ready()).toBe(false);
    expect(result.state).toBe('PROGRESS');
    expect(result.info).toEqual({ current: 3, total: 10 });
    await expect(b.waitFor(id, { timeout: 1500 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('backlog: STARTED, RETRY, SUCCESS queued → getTaskMeta fast-forwards to SUCCESS and one message remains', async () => {
    const b = backend();
    const id = trackedId();
    await pyStoreMany([
      { task_id: id, status: 'STARTED', result: { pid: 1, hostname: 'w1' } },
      { task_id: id, status: 'RETRY', result: ['again'], exception_type: 'RuntimeError' },
      { task_id: id, status: 'SUCCESS', result: 'done' },
    ]);
    expect(await queueState(id)).toMatchObject({ messages: 3 });
    expect(await b.getTaskMeta(id)).toEqual(meta(id, 'SUCCESS', 'done'));
    expect(await queueState(id)).toMatchObject({ exists: true, messages: 1 });
  });

  it('backlog over the limit rejects with BacklogLimitExceeded', async () => {
    const b = backend();
    const id = trackedId();
    await pyStoreMany([1, 2, 3, 4, 5].map((n) => ({ task_id: id, status: 'PROGRESS', result: { n } })));
    const err = await b.getTaskMeta(id, { backlogLimit: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BacklogLimitExceeded);
    expect((err as BacklogLimitExceeded).taskId).toBe(id);
  });

  it('children stored by Python come back as result objects', async () => {
    const b = backend();
    const id = trackedId();
    const [c1, c2, g] = [newTaskId(), newTaskId(), newTaskId()];
    const children = [
      [[c1, null], null],
      [g, [[[c2, null], null]]],
    ];
    await pyStore(id, 'SUCCESS', 1, '--children', JSON.stringify(children));
    const result = new AsyncResult(id, b);
    await result.get({ timeout: 10_000 });
    const kids = result.children ?? [];
    expect(kids).toHaveLength(2);
    expect(kids[0]).toBeInstanceOf(AsyncResult);
    expect(kids[0]?.id).toBe(c1);
    expect(kids[1]).toBeInstanceOf(GroupResult);
    expect((kids[1] as GroupResult).results.map((r) => r.id)).toEqual([c2]);
    expect(kids.map((k) => k.asTuple())).toEqual(children);
  });

  it('getMany over 150 ids Python stored in one go yields each once with its meta', async () => {
    const b = backend();
    const ids = Array.from({ length: 150 }, () => trackedId());
    await pyStoreMany(ids.map((id, i) => ({ task_id: id, status: 'SUCCESS', result: i })));
    const seen = new Map<string, TaskMeta>();
    for await (const [id, m] of b.getMany(ids, { timeout: 30_000 })) {
      expect(seen.has(id)).toBe(false);
      seen.set(id, m);
    }
    expect(seen.size).toBe(150);
    ids.forEach((id, i) => expect(seen.get(id)).toEqual(meta(id, 'SUCCESS', i)));
  }, 60_000);

  it('GroupResult.joinNative over ids stored in random order gives the values in input order', async () => {
    const b = backend();
    const ids = Array.from({ length: 130 }, () => trackedId());
    const shuffled = [...ids].sort(() => Math.random() - 0.5);
    await pyStoreMany(shuffled.map((id) => ({ task_id: id, status: 'SUCCESS', result: `v-${id}` })));
    const group = new GroupResult(
      newTaskId(),
      ids.map((id) => new AsyncResult(id, b)),
      b,
    );
    const calls: string[] = [];
    const values = await group.joinNative({ timeout: 30_000, callback: (id) => calls.push(id) });
    expect(values).toEqual(ids.map((id) => `v-${id}`));
    expect([...calls].sort()).toEqual([...ids].sort());
    expect(await group.completedCount()).toBe(130);
    // get() picks the native join for the AMQP backend and answers from the kept metas.
    expect(await group.get()).toEqual(values);
  }, 60_000);

  it('joinNative calls back in arrival order while the results are still coming', async () => {
    const b = backend();
    const ids = [trackedId(), trackedId(), trackedId()];
    const order = [ids[2], ids[0], ids[1]] as string[];
    const set = new ResultSet(
      ids.map((id) => new AsyncResult(id, b)),
      b,
    );
    const calls: string[] = [];
    let arrived: () => void = () => undefined;
    const joined = set.joinNative({
      timeout: 30_000,
      callback: (id) => {
        calls.push(id);
        arrived();
      },
    });
    for (const id of order) {
      const next = new Promise<void>((resolve) => (arrived = resolve));
      await pyStore(id, 'SUCCESS', id);
      await next;
    }
    expect(await joined).toEqual(ids);
    expect(calls).toEqual(order);
  });

  it('joinNative with propagate rejects on the first FAILURE and cancels its consumer', async () => {
    const b = backend();
    const [good, bad, never] = [trackedId(), trackedId(), trackedId()];
    await pyStore(good, 'SUCCESS', 1);
    await pyStore(bad, 'FAILURE', ['boom'], '--exception-type', 'ZeroDivisionError');
    const group = new GroupResult(
      newTaskId(),
      [good, bad, never].map((id) => new AsyncResult(id, b)),
      b,
    );
    const err = await group.joinNative({ timeout: 30_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).excType).toBe('ZeroDivisionError');
    // The consumer is gone, so the auto-delete queue of the unfinished task went with it.
    const q = await queueState(never);
    expect(q.exists ? q.consumers : 0).toBe(0);
  });

  it('joinNative without propagate puts the error in its slot', async () => {
    const b = backend();
    const ids = [trackedId(), trackedId(), trackedId()];
    await pyStore(ids[0] as string, 'SUCCESS', 1);
    await pyStore(ids[1] as string, 'FAILURE', ['boom'], '--exception-type', 'ZeroDivisionError');
    await pyStore(ids[2] as string, 'SUCCESS', 3);
    const set = new ResultSet(
      ids.map((id) => new AsyncResult(id, b)),
      b,
    );
    const values = await set.joinNative({ timeout: 30_000, propagate: false });
    expect(values[0]).toBe(1);
    expect(values[1]).toBeInstanceOf(TaskError);
    expect((values[1] as TaskError).excType).toBe('ZeroDivisionError');
    expect(values[2]).toBe(3);
    // The member keeps the same error object.
    expect(set.results[1]?.result).toBe(values[1]);
    expect(await set.failed()).toBe(true);
    expect(await set.successful()).toBe(false);
    expect(await set.completedCount()).toBe(2);
  });
});

describe('TypeScript stores, Python reads', () => {
  const variants: Array<{ name: string; py: string[]; ts: Omit<AMQPBackendOptions, 'connection'> }> = [
    { name: 'json', py: [], ts: {} },
    { name: 'msgpack', py: [], ts: { serializer: 'msgpack' } },
    { name: 'yaml', py: [], ts: { serializer: 'yaml' } },
    { name: 'json + zlib', py: [], ts: { compression: 'zlib' } },
  ];

  for (const v of variants) {
    it(`${v.name}: Python get (basic.get) then wait (consume) read the same meta`, async () => {
      const b = backend(v.ts);
      const id = trackedId();
      await b.storeResult(id, VALUE, 'SUCCESS');
      const got = await pyGet(id, '--show-properties', ...v.py);
      expect(got.meta).toEqual(meta(id, 'SUCCESS', VALUE));
      const wanted: Record<string, unknown> = {
        json: { content_type: 'application/json', content_encoding: 'utf-8' },
        msgpack: { content_type: 'application/x-msgpack', content_encoding: 'binary' },
        yaml: { content_type: 'application/x-yaml', content_encoding: 'utf-8' },
      };
      expect(got.properties).toMatchObject(wanted[v.ts.serializer ?? 'json'] as object);
      if (v.ts.compression !== undefined) {
        expect(got.properties).toMatchObject({ headers: { compression: 'application/x-gzip' } });
      }
      const waited = ok(await runPeer(['wait', id, '--timeout', '10', ...v.py]));
      expect(waited.lines[0]).toEqual(meta(id, 'SUCCESS', VALUE));
    });
  }

  it('the message properties are Celery 4.4 ones: persistent, priority 0, correlation_id = task id', async () => {
    const b = backend();
    const id = trackedId();
    await b.storeResult(id, 1, 'SUCCESS');
    const { properties } = await pyGet(id, '--show-properties');
    expect(properties).toMatchObject({
      content_type: 'application/json',
      content_encoding: 'utf-8',
      headers: {},
      delivery_mode: 2,
      priority: 0,
      correlation_id: id,
      reply_to: null,
      exchange: 'celeryresults',
      routing_key: rk(id),
    });
  });

  it("the request's correlation_id is carried", async () => {
    const b = backend();
    const id = trackedId();
    const correlation = `corr-${newTaskId()}`;
    await b.storeResult(id, 1, 'SUCCESS', { request: { id, correlation_id: correlation } });
    const { properties } = await pyGet(id, '--show-properties');
    expect(properties).toMatchObject({ correlation_id: correlation });
  });

  it('transient: Python reads with --transient and sees delivery_mode 1', async () => {
    const exchange = newExchange('ts-transient');
    const b = backend({ exchange, persistent: false });
    const id = trackedId();
    await b.storeResult(id, 'x', 'SUCCESS');
    const { meta: m, properties } = await pyGet(
      id,
      '--transient',
      '--exchange',
      exchange,
      '--show-properties',
    );
    expect(m).toEqual(meta(id, 'SUCCESS', 'x'));
    expect(properties).toMatchObject({ delivery_mode: 1 });
  });

  it('FAILURE from a JS Error is a real exception for Python', async () => {
    const b = backend();
    const id = trackedId();
    const error = new RangeError('too big');
    await b.storeResult(id, error, 'FAILURE', { traceback: error.stack ?? null });
    const { meta: m } = await pyGet(id);
    const body = m as TaskMeta;
    expect(body.status).toBe('FAILURE');
    expect(body.result).toEqual({ exc_type: 'ValueError', exc_message: ['too big'], exc_module: 'builtins' });
    expect(body.traceback).toContain('too big');
    expect(await pythonRehydrate(body.result)).toEqual({
      type: 'ValueError',
      module: 'builtins',
      args: ['too big'],
    });
  });

  it('children given as result objects reach Python as tuples', async () => {
    const b = backend();
    const id = trackedId();
    const c1 = new AsyncResult(newTaskId(), b);
    const group = new GroupResult(newTaskId(), [new AsyncResult(newTaskId(), b)], b);
    await b.storeResult(id, 1, 'SUCCESS', { request: { id, children: [c1, group] } });
    const { meta: m } = await pyGet(id);
    expect((m as TaskMeta).children).toEqual([c1.asTuple(), group.asTuple()]);
    expect((m as TaskMeta).children).toEqual([
      [[c1.id, null], null],
      [group.id, [[[group.results[0]?.id, null], null]]],
    ]);
  });

  it('backlog: STARTED, RETRY, SUCCESS stored by us → Python get returns SUCCESS and one message remains', async () => {
    const b = backend();
    const id = trackedId();
    await b.storeResult(id, { pid: 1, hostname: 'node' }, 'STARTED');
    await b.storeResult(id, new Error('again'), 'RETRY');
    await b.storeResult(id, 'done', 'SUCCESS');
    expect(await queueState(id)).toMatchObject({ messages: 3 });
    expect((await pyGet(id)).meta).toEqual(meta(id, 'SUCCESS', 'done'));
    expect(await queueState(id)).toMatchObject({ exists: true, messages: 1 });
  });

  it('Python wait-many collects 130 results we stored', async () => {
    const b = backend();
    const ids = Array.from({ length: 130 }, () => trackedId());
    await Promise.all(ids.map((id, i) => b.storeResult(id, i, 'SUCCESS')));
    const r = ok(await runPeer(['wait-many', ...ids, '--timeout', '30'], { timeoutMs: 60_000 }));
    const lines = r.lines as Array<{ task_id: string; meta: TaskMeta }>;
    expect(lines).toHaveLength(130);
    const byId = new Map(lines.map((l) => [l.task_id, l.meta]));
    ids.forEach((id, i) => expect(byId.get(id)).toEqual(meta(id, 'SUCCESS', i)));
  }, 60_000);
});

describe('groups (TypeScript only: Celery 4.4 raises NotImplementedError for them)', () => {
  it('a group saved by one backend is restored by another, then deleted', async () => {
    const writer = backend();
    const reader = backend();
    const members = [trackedId(), trackedId()];
    const gid = trackedId();
    const group = new GroupResult(
      gid,
      members.map((m) => new AsyncResult(m, writer)),
      writer,
    );
    await group.save();
    const restored = await GroupResult.restore(gid, reader);
    expect(restored?.asTuple()).toEqual(group.asTuple());
    expect(restored?.results[0]?.backend).toBe(reader);
    // Restoring does not consume the saved group.
    expect((await GroupResult.restore(gid, reader, { cache: false }))?.id).toBe(gid);
    await group.delete();
    expect(await GroupResult.restore(gid, backend(), { cache: false })).toBeNull();
  });
});

describe('x-expires: both sides must declare the queue alike', () => {
  const agree: Array<{ name: string; py: string[]; expires: number | null }> = [
    { name: 'default (1 day)', py: [], expires: 86_400 },
    { name: 'custom (60 s)', py: ['--expires', '60'], expires: 60 },
    { name: 'none', py: ['--no-expires'], expires: null },
  ];

  for (const v of agree) {
    it(`${v.name}: no 406 either way`, async () => {
      const b = backend({ expires: v.expires });
      const fromPy = trackedId();
      await pyStore(fromPy, 'SUCCESS', 1, ...v.py);
      expect(await b.getTaskMeta(fromPy)).toEqual(meta(fromPy, 'SUCCESS', 1));
      const fromTs = trackedId();
      await b.storeResult(fromTs, 2, 'SUCCESS');
      expect((await pyGet(fromTs, ...v.py)).meta).toEqual(meta(fromTs, 'SUCCESS', 2));
    });
  }

  it('the queues we declare carry the x-expires Celery would send (RabbitMQ view)', async () => {
    const cases: Array<[number | null, boolean, string]> = [
      [86_400, true, '[{"x-expires",86400000}]'],
      [60, true, '[{"x-expires",60000}]'],
      [null, true, '[]'],
      [86_400, false, '[{"x-expires",86400000}]'],
    ];
    const ids: string[] = [];
    for (const [expires, persistent] of cases) {
      const exchange = persistent ? 'celeryresults' : newExchange('ts-flags');
      const tid = trackedId();
      ids.push(tid);
      await backend({ expires, persistent, exchange }).storeResult(tid, 1, 'SUCCESS');
    }
    const flags = await queueFlags();
    expect(ids.map((tid) => flags.get(rk(tid)))).toEqual(
      cases.map(([, persistent, args]) => ({ durable: String(persistent), autoDelete: 'true', args })),
    );
  }, 60_000);

  it('result_expires 0: Celery’s wire (x-expires 0) is refused by RabbitMQ, so we refuse the setting', async () => {
    // What a Celery 4.4 AMQP backend with result_expires=0 declares: int(0 * 1000) = 0.
    const r = await runPeer(['declare', trackedId(), '--expires', '0']);
    expect(r.code).toBe(5);
    expect(r.lines[0]).toMatchObject({ code: 406 });
    expect(String((r.lines[0] as { message: string }).message)).toMatch(/x-expires.*value_zero/);
    expect(() => backend({ settings: { result_expires: 0 } })).toThrow(/result_expires.*0 is refused/);
  });

  it('different x-expires: our poll gets a typed 406 and the backend keeps working', async () => {
    const b = backend({ expires: 60 });
    const id = trackedId();
    await pyStore(id, 'SUCCESS', 1);
    const err = await b.getTaskMeta(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelError);
    expect((err as ChannelError).code).toBe('PRECONDITION_FAILED');
    expect((err as ChannelError).replyCode).toBe(406);
    const fine = trackedId();
    await pyStore(fine, 'SUCCESS', 2, '--expires', '60');
    expect(await b.getTaskMeta(fine)).toEqual(meta(fine, 'SUCCESS', 2));
  });

  it('different x-expires: Python gets 406 reading a queue we declared without x-expires', async () => {
    const b = backend({ expires: null });
    const id = trackedId();
    await b.storeResult(id, 1, 'SUCCESS');
    const r = await runPeer(['get', id]);
    expect(r.code).toBe(5);
    expect(r.lines[0]).toMatchObject({ code: 406 });
  });

  it('different durability: our store into a queue Python declared durable gets a typed 406', async () => {
    const exchange = newExchange('ts-durability');
    const id = trackedId();
    ok(await runPeer(['declare', id, '--exchange', exchange]));
    const b = backend({ exchange: `${exchange}-t`, persistent: false });
    exchanges.add(`${exchange}-t`);
    const err = await b.storeResult(id, 1, 'SUCCESS').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChannelError);
    expect((err as ChannelError).code).toBe('PRECONDITION_FAILED');
  });
});
