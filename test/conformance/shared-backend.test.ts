/**
 * What every result backend shares (BaseBackend), run on AMQPBackend and RPCBackend over
 * memory:// and RabbitMQ: the same test body for each. Each divergence issue 11 found between
 * the two backends (close() errors, the retry policy, a bad `expires`, markAs* traceback and
 * request conventions, two deadline mechanisms) is a test here, as are the behaviours
 * issue 10 asks of both (ready results are final, timeouts that say what happened).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AsyncResult } from '../../src/celery/async-result.js';
import { DEFAULT_STORE_RETRY_POLICY } from '../../src/celery/backend-options.js';
import { AbortError, ArgumentError, ConnectionError, TimeoutError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { cleanupStack, newTaskId, waitUntil } from '../fixture.js';
import { backendKinds } from './backend-pair.js';
import { transports } from './transports.js';

/** The rejection of `p`, or a failure when it resolves. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  const outcome = await p.then(
    () => new Error('expected a rejection, got a value'),
    (err: unknown) => err,
  );
  if (!(outcome instanceof Error)) throw new Error(`rejected with a non-Error: ${String(outcome)}`);
  return outcome;
}

describe.each(transports)('shared backend behaviour on $name', (t) => {
  describe.each(backendKinds)('$name', (kind) => {
    const cleanups = cleanupStack();
    afterEach(() => cleanups.run());

    it('markAs*: one request convention (options.request) and one traceback default (the stack; null stores none)', async () => {
      const { client, worker, request } = await kind.pair(t.url, cleanups);
      const [failed, bare, retried, revoked, started, done] = [
        newTaskId(),
        newTaskId(),
        newTaskId(),
        newTaskId(),
        newTaskId(),
        newTaskId(),
      ];
      const err = new RangeError('out of range');
      await worker.markAsFailure(failed, err, { request: request(failed) });
      await worker.markAsFailure(bare, err, { request: request(bare), traceback: null });
      await worker.markAsRetry(retried, new Error('again'), { request: request(retried) });
      await worker.markAsRevoked(revoked, 'expired', { request: request(revoked) });
      await worker.markAsStarted(started, { pid: 1 }, { request: request(started) });
      await worker.markAsDone(done, 42, { request: request(done) });

      const f = await client.waitFor(failed, { timeout: 5000 });
      expect(f.status).toBe('FAILURE');
      expect(f.result).toEqual({
        exc_type: 'ValueError',
        exc_message: ['out of range'],
        exc_module: 'builtins',
      });
      expect(f.traceback).toBe(err.stack);
      expect((await client.waitFor(bare, { timeout: 5000 })).traceback).toBeNull();
      const r = await client.waitFor(revoked, { timeout: 5000 });
      expect(r).toMatchObject({ status: 'REVOKED', traceback: null });
      expect(r.result).toMatchObject({ exc_type: 'TaskRevokedError', exc_message: ['expired'] });
      expect((await client.waitFor<number>(done, { timeout: 5000 })).result).toBe(42);
      // Non-ready states: visible to a poll, never the end of a wait.
      await expect
        .poll(async () => (await client.getTaskMeta(retried)).status, { timeout: 5000 })
        .toBe('RETRY');
      expect((await client.getTaskMeta(retried)).traceback).toMatch(/^Error: again/);
      await expect
        .poll(async () => (await client.getTaskMeta(started)).result, { timeout: 5000 })
        .toEqual({ pid: 1 });
    });

    it('close() rejects pending waits and every later call with ConnectionError CONNECTION_CLOSED', async () => {
      const { client, request } = await kind.pair(t.url, cleanups);
      const id = newTaskId();
      request(id);
      // Attached before close(): the rejections happen while close() is still at work.
      const waiting = rejection(client.waitFor(id));
      const many = rejection(client.getMany([id, newTaskId()]).next());
      await client.close();
      await client.close(); // idempotent
      for (const err of [await waiting, await many]) {
        expect(err).toBeInstanceOf(ConnectionError);
        expect(err).toMatchObject({ code: 'CONNECTION_CLOSED', recoverable: false });
      }
      for (const call of [
        client.waitFor(id, { cache: false }),
        client.getTaskMeta(id),
        client.storeResult(id, 1, 'SUCCESS'),
        client.forget(id),
      ]) {
        expect(await rejection(call)).toMatchObject({ name: 'ConnectionError', code: 'CONNECTION_CLOSED' });
      }
    });

    it('the caller’s AbortSignal ends a wait with AbortError (not the closed error)', async () => {
      const { client } = await kind.pair(t.url, cleanups);
      const ac = new AbortController();
      const waiting = rejection(client.waitFor(newTaskId(), { signal: ac.signal }));
      ac.abort();
      expect(await waiting).toBeInstanceOf(AbortError);
      const pre = new AbortController();
      pre.abort();
      expect(await rejection(client.waitFor(newTaskId(), { signal: pre.signal }))).toBeInstanceOf(AbortError);
    });

    it('a wait that times out names the task, the wait and the last state seen (PENDING asks about result_backend)', async () => {
      const { client, worker, request } = await kind.pair(t.url, cleanups);
      const id = newTaskId();
      request(id);
      const pending = await rejection(client.waitFor(id, { timeout: 200 }));
      expect(pending).toBeInstanceOf(TimeoutError);
      expect(pending).toMatchObject({ code: 'TIMEOUT' });
      expect(pending.message).toContain(id);
      expect(pending.message).toContain('200 ms');
      expect(pending.message).toContain('PENDING');
      expect(pending.message).toMatch(/result_backend/);
      expect(pending.message).toContain(client.asUri());

      await worker.markAsStarted(id, { pid: 2 }, { request: request(id) });
      await expect.poll(async () => (await client.getTaskMeta(id)).status, { timeout: 5000 }).toBe('STARTED');
      const started = await rejection(client.waitFor(id, { timeout: 200 }));
      expect(started).toBeInstanceOf(TimeoutError);
      expect(started.message).toContain(id);
      expect(started.message).toContain('last state seen: STARTED');
      expect(started.message).not.toMatch(/result_backend/);
    });

    it('waitFor resolves on a result stored while it is receiving', async () => {
      const { client, worker, request } = await kind.pair(t.url, cleanups);
      const id = newTaskId();
      const seen = client.cache.watch(id);
      const waiting = client.waitFor(id, { timeout: 10_000 });
      // The wait has received a state stored after it began: it is consuming, not polling once.
      await worker.markAsStarted(id, { pid: 1 }, { request: request(id) });
      await waitUntil(() => seen.status === 'STARTED', { what: 'the wait to receive STARTED' });
      await worker.markAsDone(id, 'done', { request: request(id) });
      expect((await waiting).result).toBe('done');
      seen.stop();
    });

    it('ready results are final: every later read in the process returns a result the first read consumed', async () => {
      const { client, worker, request } = await kind.pair(t.url, cleanups);
      const id = newTaskId();
      await worker.markAsDone(id, 7, { request: request(id) });
      expect((await client.waitFor<number>(id, { timeout: 5000 })).result).toBe(7);
      expect((await client.waitFor<number>(id, { timeout: 1000 })).result).toBe(7);
      expect(await client.getTaskMeta(id)).toMatchObject({ status: 'SUCCESS', result: 7 });
      const r = new AsyncResult<number>(id, client);
      expect(await r.get({ timeout: 1000 })).toBe(7);
      const many: number[] = [];
      for await (const [, meta] of client.getMany<number>([id], { timeout: 1000 })) many.push(meta.result);
      expect(many).toEqual([7]);
    });

    it('result_cache_max -1 restores Celery 4: the first read consumes the result, the next one waits', async () => {
      const { client, worker, request } = await kind.pair(t.url, cleanups, {
        settings: { result_cache_max: -1 },
      });
      const id = newTaskId();
      await worker.markAsDone(id, 7, { request: request(id) });
      expect((await client.waitFor<number>(id, { timeout: 5000 })).result).toBe(7);
      expect(await rejection(client.waitFor(id, { timeout: 200 }))).toBeInstanceOf(TimeoutError);
      expect((await client.getTaskMeta(id)).status).toBe('PENDING');
    });

    it('getMany: cached first, each id once; its timeout names how many are missing and a few ids', async () => {
      const { client, worker, request } = await kind.pair(t.url, cleanups);
      const ids = Array.from({ length: 6 }, () => newTaskId());
      const [a, b, ...missing] = ids as [string, string, ...string[]];
      await worker.markAsDone(a, 'a', { request: request(a) });
      await worker.markAsDone(b, 'b', { request: request(b) });
      for (const id of missing) request(id);
      await client.waitFor(a, { timeout: 5000 });
      const seen: string[] = [];
      const err = await rejection(
        (async () => {
          for await (const [id] of client.getMany([...ids, a], { timeout: 300 })) seen.push(id);
        })(),
      );
      expect(seen[0]).toBe(a);
      expect(seen.sort()).toEqual([a, b].sort());
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err).toMatchObject({ code: 'TIMEOUT' });
      expect(err.message).toMatch(/4 of 6 results not ready after 300 ms/);
      expect(missing.filter((id) => err.message.includes(id))).toHaveLength(3);
      expect(err.message).toContain('and 1 more');
    });

    it('expires is in seconds (as Celery); a bad one throws ArgumentError', () => {
      const conn = new Connection(t.url);
      const b = kind.make(conn, { expires: 90 });
      expect(b.expires).toBe(90);
      expect(kind.make(conn, { expires: null }).expires).toBeNull();
      // 0 would be x-expires 0, which RabbitMQ refuses with 406 (docs/wire.md §1).
      expect(() => kind.make(conn, { expires: 0 })).toThrow(/^expires: 0 is refused/);
      expect(kind.make(conn, { settings: { result_expires: 30 } }).expires).toBe(30);
      for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '60', 3_000_000]) {
        expect(() => kind.make(conn, { expires: bad as number })).toThrow(ArgumentError);
      }
      expect(() => kind.make(conn, { settings: { result_expires: -5 } })).toThrow(ArgumentError);
    });

    it('a store retries per the retry policy merged with the defaults ({ intervalStart } keeps 20 retries)', async () => {
      const { worker, request } = await kind.pair(t.url, cleanups, { retryPolicy: { intervalStart: 100 } });
      const ensure = vi.spyOn(worker.connection, 'ensure');
      const id = newTaskId();
      await worker.markAsDone(id, 1, { request: request(id) });
      expect(ensure).toHaveBeenCalledWith(
        expect.any(Function),
        expect.objectContaining({ ...DEFAULT_STORE_RETRY_POLICY, intervalStart: 100 }),
      );
      ensure.mockRestore();
    });

    it('the store retry policy is merged with the defaults', () => {
      const conn = new Connection(t.url);
      expect(kind.make(conn).retryPolicy).toEqual(DEFAULT_STORE_RETRY_POLICY);
      expect(kind.make(conn, { retryPolicy: { intervalStart: 100 } }).retryPolicy).toEqual({
        ...DEFAULT_STORE_RETRY_POLICY,
        intervalStart: 100,
      });
      expect(() => kind.make(conn, { retryPolicy: { maxRetries: -1 } })).toThrow(ArgumentError);
    });
  });
});
