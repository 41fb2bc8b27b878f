/**
 * Backend recovery on the real RabbitMQ: a socket destroyed mid-getMany, a server-side
 * close_connection during store bursts, missed heartbeats through a black-holed proxy.
 * Each test touches only its own connections (TcpProxy, or close_connection by name).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import type { TaskMeta } from '../../src/celery/backend-types.js';
import { CeleryAmqpError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import type { ConnectionOptions } from '../../src/kombu/connection.js';
import { BROKER_URL, cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';
import { FAST, backendOn, closeConnection, waitForConnection } from './helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const cleanups = cleanupStack();

afterEach(() => cleanups.run());

async function proxy(): Promise<TcpProxy> {
  const p = new TcpProxy();
  await p.start();
  cleanups.push(() => p.close());
  return p;
}

/** A backend on its own Connection (closed after the test), with a unique exchange. */
function backend(
  url: string,
  exchange: string,
  conn: ConnectionOptions = {},
  opts: AMQPBackendOptions = {},
): AMQPBackend {
  return backendOn(
    url,
    exchange,
    { heartbeat: 0, connectionName: uid('be'), retryPolicy: FAST, ...conn },
    {
      persistent: false,
      autoDelete: false,
      expires: 120,
      retryPolicy: { maxRetries: 40, intervalStart: 0, intervalStep: 100, intervalMax: 500 },
      ...opts,
    },
    cleanups,
  );
}

const ids = (n: number): string[] => Array.from({ length: n }, () => newTaskId());

describe('backend recovery on RabbitMQ', () => {
  it('getMany of 1,000 survives a destroyed socket mid-stream while results are stored: all arrive once', async () => {
    const px = await proxy();
    const url = `amqp://guest:guest@127.0.0.1:${px.port}//`;
    const exchange = uid('gm-ex');
    const reader = backend(url, exchange);
    // The writer goes through the same proxy: its stores in flight are cut too and retried.
    const writer = backend(url, exchange);
    const taskIds = ids(1000);
    let cuts = 0;
    reader.connection.on('disconnect', () => (cuts += 1));
    const seen: string[] = [];
    const iter = reader.getMany(taskIds, { timeout: 120_000, noAck: false });
    const storing = (async () => {
      for (let i = 0; i < taskIds.length; i += 50) {
        await Promise.all(taskIds.slice(i, i + 50).map((id, j) => writer.storeResult(id, i + j, 'SUCCESS')));
        if (i === 500) px.cut();
      }
    })();
    for await (const [id, meta] of iter) {
      seen.push(id);
      expect(meta.status).toBe('SUCCESS');
    }
    await storing;
    expect(cuts).toBeGreaterThanOrEqual(1);
    expect(seen.length).toBe(1000);
    expect(new Set(seen).size).toBe(1000);
    expect(new Set(seen)).toEqual(new Set(taskIds));
  });

  it('close_connection during store bursts: each store resolves or rejects typed, every resolved one is readable', async () => {
    const exchange = uid('burst-ex');
    const name = uid('burst-conn');
    const writer = backend(BROKER_URL, exchange, { connectionName: name });
    const reader = backend(BROKER_URL, exchange);
    const taskIds = ids(600);
    await writer.connection.connect();
    const outcomes = taskIds.map((id, i) =>
      writer.storeResult(id, { i }, 'SUCCESS').then(
        () => 'ok' as const,
        (err: unknown) => err,
      ),
    );
    // Mid-burst, twice: server-side 320 CONNECTION_FORCED for this connection only.
    await closeConnection(name, 'fault burst 1');
    await waitForConnection(name);
    await closeConnection(name, 'fault burst 2');
    const settled = await Promise.all(outcomes);
    const failures = settled.filter((o) => o !== 'ok');
    for (const f of failures) expect(f).toBeInstanceOf(CeleryAmqpError);
    const stored = taskIds.filter((_, i) => settled[i] === 'ok');
    // The retry policy (40 retries) outlasts two closes: every store went through.
    expect(stored.length).toBe(600);
    const metas = await Promise.all(stored.map((id) => reader.getTaskMeta(id)));
    const missing = metas.filter((m: TaskMeta) => m.status !== 'SUCCESS');
    expect(missing).toEqual([]);
    // Each close goes through rabbitmqctl, which takes seconds when the broker is busy with
    // the other suites: 2.5 s alone, 12 s in a loaded CI run.
  }, 90_000);

  it('missed heartbeats through a black-holed proxy: the client notices, reconnects, and waitFor completes', async () => {
    const px = await proxy();
    const exchange = uid('hb-ex');
    const reader = backend(`amqp://guest:guest@127.0.0.1:${px.port}//`, exchange, {
      heartbeat: 2000,
      connectTimeout: 2000,
    });
    const writer = backend(BROKER_URL, exchange);
    const [id] = ids(1) as [string];
    const errors: Error[] = [];
    reader.connection.on('error', (e) => errors.push(e));
    let lost: Error | undefined;
    reader.connection.on('disconnect', (e) => (lost = e));
    const waiting = reader.waitFor(id, { timeout: 60_000 });
    // Let the consumer start, then black-hole the link: nothing is closed, bytes just stop.
    await waitUntil(() => px.connections >= 1, { what: 'the reader connection', timeout: 20_000 });
    await reader.getTaskMeta(uid('probe').replaceAll('-', ''));
    px.pause();
    // amqplib declares the peer dead after two silent heartbeat periods; the bound is only
    // there so that a client that never notices fails instead of hanging.
    await waitUntil(() => lost !== undefined, { what: 'heartbeat loss detected', timeout: 15_000 });
    // While the reader is gone, the result is stored; autoDelete false keeps its queue.
    await writer.storeResult(id, 'after the black hole', 'SUCCESS');
    px.resume();
    const meta = await waiting;
    expect(meta.result).toBe('after the black hole');
  });

  it('a channel close that loses its close-ok to a cut socket settles (amqplib alone would wait forever)', async () => {
    const px = await proxy();
    const connection = new Connection(`amqp://guest:guest@127.0.0.1:${px.port}//`, {
      heartbeat: 0,
      connectionName: uid('close-cut'),
      retryPolicy: FAST,
    });
    cleanups.push(() => connection.close());
    const channel = await connection.channel();
    await channel.whenReady();
    // The close is written but held by the proxy; the cut then takes the connection first.
    px.pause();
    const closing = channel.close().then(
      () => 'closed',
      (err: unknown) => err,
    );
    await waitUntil(() => px.held > 0, { what: 'the channel.close held by the proxy' });
    px.cut();
    const outcome = await Promise.race([
      closing,
      new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000)),
    ]);
    expect(outcome).toBe('closed');
  });

  it('a connection close that loses its close-ok to a cut socket settles, and so does a backend close', async () => {
    const px = await proxy();
    const url = `amqp://guest:guest@127.0.0.1:${px.port}//`;
    const connection = new Connection(url, {
      heartbeat: 0,
      connectionName: uid('conn-close-cut'),
      retryPolicy: FAST,
    });
    cleanups.push(() => connection.close());
    const b = new AMQPBackend({
      connection: url,
      exchange: uid('close-cut-ex'),
      persistent: false,
      expires: 10,
    });
    cleanups.push(() => b.close());
    await connection.connect();
    await b.storeResult(newTaskId(), 1, 'SUCCESS');
    // Both closes are written but held by the proxy; the cut then ends both sockets first.
    px.pause();
    const settled = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'closed',
        (err: unknown) => `rejected: ${String(err)}`,
      );
    const closing = [settled(connection.close()), settled(b.close())];
    await waitUntil(() => px.holding === 2, { what: 'both closes held by the proxy' });
    px.cut();
    const outcome = await Promise.race([
      Promise.all(closing),
      new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000)),
    ]);
    expect(outcome).toEqual(['closed', 'closed']);
  });

  it('with autoDelete false, results published while the consumer is cut are all delivered after recovery', async () => {
    const px = await proxy();
    const exchange = uid('ad-ex');
    const reader = backend(`amqp://guest:guest@127.0.0.1:${px.port}//`, exchange, { connectTimeout: 1000 });
    const writer = backend(BROKER_URL, exchange);
    const taskIds = ids(200);
    const [head, ...rest] = taskIds as [string, ...string[]];
    let lost = false;
    reader.connection.on('disconnect', () => (lost = true));
    const iter = reader.getMany(taskIds, { timeout: 60_000 });
    // The first result proves the consumers are up.
    const firstNext = iter.next();
    await writer.storeResult(head, 0, 'SUCCESS');
    const first = await firstNext;
    expect(first.value?.[0]).toBe(head);
    // Cut, and keep the reader out: its reconnects hang in the black hole meanwhile.
    px.cut();
    px.pause();
    await waitUntil(() => lost, { what: 'disconnect', timeout: 20_000 });
    await Promise.all(rest.map((id, i) => writer.storeResult(id, i + 1, 'SUCCESS')));
    px.resume();
    const seen = [head];
    for await (const [id] of iter) seen.push(id);
    expect(seen.length).toBe(200);
    expect(new Set(seen)).toEqual(new Set(taskIds));
  });
});
