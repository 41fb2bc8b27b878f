/**
 * Defaults as Celery's (the broker from the option, else CELERY_BROKER_URL, else
 * amqp://guest:guest@localhost:5672//; memory:// only when named) and Celery's units for
 * options spelled as in apply_async (countdown, expires and time limits in seconds).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { Celery } from '../../src/celery/app.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { decodeTaskMessage, parseIsoDate } from '../../src/celery/task-message.js';
import { ConnectionError } from '../../src/errors.js';
import { cleanupStack, newTaskId, uid } from '../fixture.js';

const DEFAULT = 'amqp://guest:****@localhost:5672//';

describe('defaults as Celery', () => {
  const cleanups = cleanupStack();
  afterEach(async () => {
    vi.unstubAllEnvs();
    await cleanups.run();
  });

  it('without a connection the backends and the app use amqp://guest:guest@localhost:5672//, never memory://', async () => {
    vi.stubEnv('CELERY_BROKER_URL', '');
    const amqp = new AMQPBackend();
    const rpc = new RPCBackend();
    const app = new Celery({ backend: 'rpc://' });
    cleanups.push(() => Promise.all([amqp.close(), rpc.close(), app.close()]));
    expect(amqp.connection.displayUrl).toBe(DEFAULT);
    expect(rpc.connection.displayUrl).toBe(DEFAULT);
    expect(app.connection.displayUrl).toBe(DEFAULT);
    // rpc:// rides on the app's broker connection.
    expect(app.backend).toBeInstanceOf(RPCBackend);
    expect((app.backend as RPCBackend).connection).toBe(app.connection);
  });

  it('CELERY_BROKER_URL comes next, and memory:// is used only when named', async () => {
    vi.stubEnv('CELERY_BROKER_URL', 'amqp://u:secret@broker.example:5673/prod');
    const amqp = new AMQPBackend();
    const app = new Celery();
    const named = new RPCBackend({ connection: 'memory://' });
    cleanups.push(() => Promise.all([amqp.close(), app.close(), named.close()]));
    expect(amqp.connection.displayUrl).toBe('amqp://u:****@broker.example:5673/prod');
    expect(app.connection.displayUrl).toBe('amqp://u:****@broker.example:5673/prod');
    expect(named.connection.displayUrl).toMatch(/^memory:/);
  });

  it('a broker that does not answer fails the call: no silent success in memory, no silent wait', async () => {
    // Port 1 on the loopback refuses at once: this needs no broker.
    vi.stubEnv('CELERY_BROKER_URL', 'amqp://guest:secret@127.0.0.1:1//');
    const amqp = new AMQPBackend({ retryPolicy: { maxRetries: 0 } });
    const app = new Celery({ backend: 'rpc://' });
    cleanups.push(() => Promise.all([amqp.close(), app.close()]));
    const stored = await amqp.storeResult(newTaskId(), 1, 'SUCCESS').catch((err: unknown) => err);
    expect(stored).toBeInstanceOf(ConnectionError);
    expect(stored).toMatchObject({ code: 'CONNECTION_REFUSED' });
    expect(String(stored)).toContain('127.0.0.1:1');
    expect(String(stored)).not.toContain('secret');
    await expect(app.sendTask('tasks.add', [2, 3])).rejects.toMatchObject({ code: 'CONNECTION_REFUSED' });
  });
});

describe('Celery units for apply_async options', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  it('a ported countdown: 10 runs 10 s later; expires and time limits are seconds too', async () => {
    const queue = uid('units');
    const app = new Celery({ broker: 'memory://', settings: { task_default_queue: queue } });
    cleanups.push(() => app.close());
    const before = Date.now();
    const r = await app.sendTask(
      't',
      [],
      {},
      { countdown: 10, expires: 60, timeLimit: 30, softTimeLimit: 20, ignoreResult: true },
    );
    const after = Date.now();
    const ch = await app.connection.channel();
    const m = await ch.get({ queue, noAck: true });
    expect(m).not.toBeNull();
    const task = decodeTaskMessage({ payload: m?.payload, properties: m?.properties ?? {} });
    expect(task.id).toBe(r.id);
    const eta = parseIsoDate(String(task.headers['eta']));
    expect(eta).toBeGreaterThanOrEqual(before + 10_000);
    expect(eta).toBeLessThanOrEqual(after + 10_000);
    const expires = parseIsoDate(String(task.headers['expires']));
    expect(expires).toBeGreaterThanOrEqual(before + 60_000);
    expect(expires).toBeLessThanOrEqual(after + 60_000);
    expect(m?.properties.expiration).toBe('60000');
    expect(task.headers['timelimit']).toEqual([30, 20]);
    const at = new Date(Date.now() + 5000);
    await app.sendTask('t', [], {}, { eta: at, expires: at, ignoreResult: true });
    const m2 = await ch.get({ queue, noAck: true });
    expect(parseIsoDate(String(m2?.properties.headers?.['eta']))).toBe(at.getTime());
    await ch.close();
  });

  it('sendTask on a closed app rejects with ConnectionError', async () => {
    const app = new Celery({ broker: 'memory://' });
    await app.close();
    await expect(app.sendTask('t')).rejects.toBeInstanceOf(ConnectionError);
  });
});
