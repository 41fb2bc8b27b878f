/**
 * AsyncResult, ResultSet and GroupResult over the real AMQPBackend on the embedded broker
 * (memory://): no stubs, every call goes through the backend's queues.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { TaskError, TaskRevokedError } from '../../src/celery/exceptions.js';
import {
  AsyncResult,
  GroupResult,
  ResultSet,
  groupResultFromTuple,
  resultFromTuple,
} from '../../src/celery/result.js';
import { AbortError, ArgumentError, CeleryAmqpError, TimeoutError } from '../../src/errors.js';
import { newTaskId } from '../fixture.js';
import { aliasBombValue } from '../hostile/bodies.js';

const backend = new AMQPBackend({ connection: 'memory://' });

afterAll(async () => {
  await backend.close();
});

describe('result tuples', () => {
  it('AsyncResult.asTuple nests the parent chain, and toJSON is the tuple', () => {
    const root = new AsyncResult('root', backend);
    const mid = new AsyncResult('mid', backend, { parent: root });
    const leaf = new AsyncResult('leaf', backend, { parent: mid });
    expect(leaf.asTuple()).toEqual([['leaf', [['mid', [['root', null], null]], null]], null]);
    expect(JSON.parse(JSON.stringify({ children: [root] }))).toEqual({ children: [[['root', null], null]] });
  });

  it('GroupResult.asTuple is [group_id, [child tuples]] and round-trips', () => {
    const group = new GroupResult(
      'g',
      [new AsyncResult('a', backend), new AsyncResult('b', backend)],
      backend,
    );
    const tuple = group.asTuple();
    expect(tuple).toEqual([
      'g',
      [
        [['a', null], null],
        [['b', null], null],
      ],
    ]);
    const back = groupResultFromTuple(JSON.parse(JSON.stringify(tuple)), backend);
    expect(back).toBeInstanceOf(GroupResult);
    expect(back.id).toBe('g');
    expect(back.results.map((r) => r.id)).toEqual(['a', 'b']);
    expect(back.asTuple()).toEqual(tuple);
  });

  it("resultFromTuple reads Celery 4.x's [[group_id, parent], children] and 3.1's bare-id head", () => {
    const g = resultFromTuple([['g', [['p', null], null]], [[['a', null], null]]], backend);
    expect(g).toBeInstanceOf(GroupResult);
    expect((g as GroupResult).parent?.id).toBe('p');
    const a = resultFromTuple(['a', null], backend);
    expect(a).toBeInstanceOf(AsyncResult);
    expect(a.id).toBe('a');
    const same = new AsyncResult('x', backend);
    expect(resultFromTuple(same, backend)).toBe(same);
  });

  it('malformed tuples and empty ids throw ArgumentError', () => {
    for (const bad of [null, 'abc', [], [1, null], [['a', null]], [['', null], null], ['g', 'not-a-list']]) {
      expect(() => resultFromTuple(bad, backend)).toThrow(ArgumentError);
    }
    expect(() => groupResultFromTuple([['a', null], null], backend)).toThrow(ArgumentError);
    expect(() => new AsyncResult('', backend)).toThrow(ArgumentError);
    expect(() => new GroupResult('', [], backend)).toThrow(ArgumentError);
  });

  it('a malformed tuple that is a shared-reference bomb is quoted in a short message', () => {
    // A decoded group message: 10^12 leaves if written out.
    const bomb = aliasBombValue();
    let message = '';
    try {
      resultFromTuple(bomb, backend);
    } catch (err) {
      expect(err).toBeInstanceOf(ArgumentError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/^not a result tuple: \[\[/);
    expect(message.length).toBeLessThan(300);
  });
});

describe('AsyncResult', () => {
  it('is PENDING until stored; get resolves with the value and keeps the meta', async () => {
    const tid = newTaskId();
    const result = new AsyncResult<{ sum: number }>(tid, backend);
    expect(result.state).toBe('PENDING');
    expect(result.result).toBeNull();
    expect(await result.ready()).toBe(false);
    expect(await result.successful()).toBe(false);
    await backend.storeResult(tid, { sum: 5 }, 'SUCCESS');
    expect(await result.get({ timeout: 5000 })).toEqual({ sum: 5 });
    expect([result.state, result.status, result.traceback, result.children]).toEqual([
      'SUCCESS',
      'SUCCESS',
      null,
      null,
    ]);
    expect(result.meta).toMatchObject({ task_id: tid, status: 'SUCCESS' });
    // waitFor consumed the message, but a ready result is final: the backend's cache has it.
    expect((await backend.getTaskMeta(tid)).status).toBe('SUCCESS');
    expect((await backend.getTaskMeta(tid, { cache: false })).status).toBe('PENDING');
    expect(await result.ready()).toBe(true);
    expect(await result.wait()).toEqual({ sum: 5 });
  });

  it('FAILURE rejects with the rehydrated TaskError; propagate false resolves with the same error', async () => {
    const tid = newTaskId();
    const result = new AsyncResult(tid, backend);
    await backend.storeResult(
      tid,
      { exc_type: 'ValueError', exc_message: ['bad', 2], exc_module: 'builtins' },
      'FAILURE',
      { traceback: 'Traceback ...\nValueError: bad' },
    );
    const err = await result.get({ timeout: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toMatchObject({
      excType: 'ValueError',
      excArgs: ['bad', 2],
      traceback: 'Traceback ...\nValueError: bad',
    });
    expect(result.result).toBe(err);
    expect(result.info).toBe(err);
    expect(await result.get({ propagate: false })).toBe(err);
    expect(() => result.maybeThrow()).toThrow(TaskError);
    expect(await result.failed()).toBe(true);
    expect(await result.successful()).toBe(false);
  });

  it('REVOKED rejects with TaskRevokedError and is not "failed"', async () => {
    const tid = newTaskId();
    await backend.storeResult(
      tid,
      { exc_type: 'TaskRevokedError', exc_message: [], exc_module: 'celery.exceptions' },
      'REVOKED',
    );
    const result = new AsyncResult(tid, backend);
    await expect(result.get({ timeout: 5000 })).rejects.toBeInstanceOf(TaskRevokedError);
    expect(await result.failed()).toBe(false);
    expect(await result.ready()).toBe(true);
  });

  it('a JS error stored as FAILURE comes back typed', async () => {
    const tid = newTaskId();
    await backend.storeResult(tid, new TypeError('nope'), 'FAILURE');
    const err = await new AsyncResult(tid, backend).get({ timeout: 5000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ excType: 'TypeError', excArgs: ['nope'], message: 'nope' });
  });

  it('refresh and the getters follow a custom state without consuming it', async () => {
    const tid = newTaskId();
    const result = new AsyncResult(tid, backend);
    await backend.storeResult(tid, { current: 1 }, 'PROGRESS');
    expect((await result.refresh()).status).toBe('PROGRESS');
    expect(result.info).toEqual({ current: 1 });
    await backend.storeResult(tid, { current: 2 }, 'PROGRESS');
    await result.refresh();
    expect(result.info).toEqual({ current: 2 });
    expect(await result.ready()).toBe(false);
  });

  it('children stored with the request come back as result objects', async () => {
    const tid = newTaskId();
    const child = new AsyncResult(newTaskId(), backend);
    const group = new GroupResult(newTaskId(), [new AsyncResult(newTaskId(), backend)], backend);
    await backend.storeResult(tid, 1, 'SUCCESS', { request: { id: tid, children: [child, group] } });
    const result = new AsyncResult(tid, backend);
    await result.get({ timeout: 5000 });
    const kids = result.children ?? [];
    expect(kids.map((k) => k.constructor.name)).toEqual(['AsyncResult', 'GroupResult']);
    expect(kids.map((k) => k.asTuple())).toEqual([child.asTuple(), group.asTuple()]);
  });

  it('get rejects with TimeoutError at the deadline and AbortError on abort', async () => {
    const result = new AsyncResult(newTaskId(), backend);
    await expect(result.get({ timeout: 50 })).rejects.toBeInstanceOf(TimeoutError);
    const ac = new AbortController();
    const pending = result.get({ signal: ac.signal });
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(AbortError);
    expect(result.state).toBe('PENDING');
  });

  it('is never a thenable: await, Promise.resolve, Promise.all and async returns keep the handle', async () => {
    const [a, b] = [newTaskId(), newTaskId()];
    await backend.storeResult(a, 'A', 'SUCCESS');
    await backend.storeResult(b, 'B', 'SUCCESS');
    const ra = new AsyncResult<string>(a, backend);
    const rb = new AsyncResult<string>(b, backend);
    expect('then' in ra).toBe(false);
    expect(await Promise.resolve(ra)).toBe(ra);
    expect(await Promise.all([ra, rb])).toEqual([ra, rb]);
    const handOver = async (): Promise<AsyncResult<string>> => rb;
    expect(await handOver()).toBe(rb);
    // The value comes from get(), typed by the handle.
    const value: string = await ra.get({ timeout: 5000 });
    expect(value).toBe('A');
    // ResultSet and GroupResult are handles too.
    const set = new ResultSet<string>([ra, rb], backend);
    expect('then' in set).toBe(false);
    expect(await Promise.resolve(set)).toBe(set);
    const values: string[] = await set.get({ timeout: 5000 });
    expect(values).toEqual(['A', 'B']);
  });

  it('a failed task rejects get(), and with propagate false the TaskError is the value', async () => {
    const tid = newTaskId();
    await backend.storeResult(tid, new RangeError('too big'), 'FAILURE');
    const r = new AsyncResult<number>(tid, backend);
    await expect(r.get({ timeout: 5000 })).rejects.toMatchObject({
      excType: 'ValueError',
      excArgs: ['too big'],
    });
    const value = await r.get({ propagate: false });
    expect(value).toBeInstanceOf(TaskError);
    expect(value).toBe(r.result);
  });

  it('forget drops the result on the broker and the kept meta', async () => {
    const tid = newTaskId();
    await backend.storeResult(tid, 1, 'SUCCESS');
    const result = new AsyncResult(tid, backend);
    expect(await result.successful()).toBe(true);
    await result.forget();
    expect(result.state).toBe('PENDING');
    expect((await backend.getTaskMeta(tid)).status).toBe('PENDING');
  });

  it('toString reads like Celery', () => {
    expect(String(new AsyncResult('abc', backend))).toBe('<AsyncResult: abc>');
  });
});

describe('ResultSet', () => {
  async function stored(values: unknown[]): Promise<AsyncResult[]> {
    const results = values.map(() => new AsyncResult(newTaskId(), backend));
    await Promise.all(results.map((r, i) => backend.storeResult(r.id, values[i], 'SUCCESS')));
    return results;
  }

  it('add skips a member already there, remove throws for a non-member, discard does not', () => {
    const a = new AsyncResult('a', backend);
    const set = new ResultSet([a], backend);
    set.add(new AsyncResult('a', backend));
    set.add(new AsyncResult('b', backend));
    expect(set.results.map((r) => r.id)).toEqual(['a', 'b']);
    expect(set.size).toBe(2);
    set.remove('a');
    expect(() => set.remove(a)).toThrow(ArgumentError);
    expect(set.discard('zzz')).toBe(false);
    expect(set.discard(new AsyncResult('b', backend))).toBe(true);
    expect(set.size).toBe(0);
  });

  it('an empty set without a backend joins to [] but has no backend to give', async () => {
    const set = new ResultSet([]);
    expect(await set.get()).toEqual([]);
    expect(await set.joinNative()).toEqual([]);
    expect(() => set.backend).toThrow(ArgumentError);
  });

  it('ready, waiting, completedCount, successful and failed over the members', async () => {
    const done = await stored([1, 2]);
    const open = new AsyncResult(newTaskId(), backend);
    const set = new ResultSet([...done, open], backend);
    expect(await set.completedCount()).toBe(2);
    expect(await set.ready()).toBe(false);
    expect(await set.waiting()).toBe(true);
    expect(await set.successful()).toBe(false);
    expect(await set.failed()).toBe(false);
    await backend.storeResult(open.id, new Error('x'), 'FAILURE');
    expect(await set.ready()).toBe(true);
    expect(await set.waiting()).toBe(false);
    expect(await set.failed()).toBe(true);
  });

  it('join waits in member order and calls back in member order', async () => {
    const results = await stored(['x', 'y', 'z']);
    const set = new ResultSet(results, backend);
    const calls: string[] = [];
    expect(await set.join({ timeout: 5000, callback: (tid) => calls.push(tid) })).toEqual(['x', 'y', 'z']);
    expect(calls).toEqual(results.map((r) => r.id));
  });

  it('join rejects with TimeoutError when a member never finishes', async () => {
    const [first] = await stored([1]);
    const set = new ResultSet([first as AsyncResult, new AsyncResult(newTaskId(), backend)], backend);
    await expect(set.join({ timeout: 100 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('joinNative gives input order, fills duplicate members, and calls back once per task', async () => {
    const results = await stored([10, 20, 30]);
    const [r0, r1, r2] = results as [AsyncResult, AsyncResult, AsyncResult];
    const set = new ResultSet([r2, r0, r1, new AsyncResult(r0.id, backend)], backend);
    const calls: string[] = [];
    expect(await set.joinNative({ timeout: 5000, callback: (tid) => calls.push(tid) })).toEqual([
      30, 10, 20, 10,
    ]);
    expect([...calls].sort()).toEqual([r0.id, r1.id, r2.id].sort());
    // Every member keeps its meta, so get() answers without the broker.
    expect(await set.get()).toEqual([30, 10, 20, 10]);
  });

  it('joinNative rejects at once on a FAILURE while others are still pending', async () => {
    const ok = await stored([1]);
    const bad = new AsyncResult(newTaskId(), backend);
    await backend.storeResult(bad.id, new SyntaxError('broken'), 'FAILURE');
    const set = new ResultSet([...ok, bad, new AsyncResult(newTaskId(), backend)], backend);
    const err = await set.joinNative({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect(err).toMatchObject({ excType: 'ValueError', excArgs: ['broken'] });
  });

  it('joinNative rejects with TimeoutError when members are missing at the deadline', async () => {
    const set = new ResultSet([new AsyncResult(newTaskId(), backend)], backend);
    await expect(set.joinNative({ timeout: 100 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('a throwing callback rejects the join with its own error', async () => {
    const set = new ResultSet(await stored([1, 2]), backend);
    const boom = new Error('callback failed');
    await expect(
      set.joinNative({
        timeout: 5000,
        callback: () => {
          throw boom;
        },
      }),
    ).rejects.toBe(boom);
  });

  it('iterNative yields known results first and can stop early; the backend keeps working', async () => {
    const results = await stored(['a', 'b', 'c']);
    const [first] = results as [AsyncResult];
    await first.get({ timeout: 5000 });
    const set = new ResultSet(results, backend);
    const seen: string[] = [];
    for await (const [tid, meta] of set.iterNative({ timeout: 5000 })) {
      seen.push(tid);
      expect(meta.status).toBe('SUCCESS');
      if (seen.length === 2) break;
    }
    expect(seen[0]).toBe(first.id);
    expect(seen).toHaveLength(2);
    const later = await stored(['d']);
    expect(await new ResultSet(later, backend).joinNative({ timeout: 5000 })).toEqual(['d']);
  });
});

describe('GroupResult', () => {
  it('save, restore and delete through the backend', async () => {
    const members = [new AsyncResult(newTaskId(), backend), new AsyncResult(newTaskId(), backend)];
    const group = new GroupResult(newTaskId(), members, backend);
    await group.save();
    const restored = await GroupResult.restore(group.id, backend, { cache: false });
    expect(restored).toBeInstanceOf(GroupResult);
    expect(restored?.asTuple()).toEqual(group.asTuple());
    expect(restored?.children.map((r) => r.id)).toEqual(members.map((m) => m.id));
    await group.delete();
    expect(await GroupResult.restore(group.id, backend, { cache: false })).toBeNull();
  });

  it('get joins the members natively in input order', async () => {
    const ids = [newTaskId(), newTaskId(), newTaskId()];
    await backend.storeResult(ids[1] as string, 'second', 'SUCCESS');
    await backend.storeResult(ids[0] as string, 'first', 'SUCCESS');
    await backend.storeResult(ids[2] as string, 'third', 'SUCCESS');
    const group = new GroupResult(
      newTaskId(),
      ids.map((t) => new AsyncResult(t, backend)),
      backend,
    );
    expect(await group.get({ timeout: 5000 })).toEqual(['first', 'second', 'third']);
    expect(String(group)).toBe(`<GroupResult: ${group.id} [${ids.join(', ')}]>`);
  });

  it('AsyncResult.forget on a backend without forget is a typed UNSUPPORTED error', async () => {
    // A ResultBackend whose forget is absent: the AMQP backend with forget shadowed away.
    const limited = Object.create(backend, { forget: { value: undefined } }) as AMQPBackend;
    const err = await new AsyncResult(newTaskId(), limited).forget().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CeleryAmqpError);
    expect((err as CeleryAmqpError).code).toBe('UNSUPPORTED');
  });
});
