/**
 * Broker app restart (`rabbitmqctl stop_app` / `start_app`): persistent results survive, and
 * a getMany in progress resumes when the broker is back. Stopping the app drops every
 * connection of every suite, so this file runs alone (the `serial` vitest project) and
 * always restarts the app in `finally`.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { BROKER_URL, cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';
import { backendOn, restartHazard, startApp, stopApp } from './helpers.js';

afterAll(async () => {
  // Whatever happened, leave the broker running for the next suite.
  await startApp().catch(() => undefined);
});
const cleanups = cleanupStack();
afterEach(() => cleanups.run());

function persistentBackend(exchange: string): AMQPBackend {
  // Durable exchange and queues, delivery_mode 2; autoDelete false so that no consumer
  // loss can delete a queue.
  return backendOn(
    BROKER_URL,
    exchange,
    {
      heartbeat: 0,
      connectionName: uid('restart'),
      retryPolicy: { intervalStart: 250, intervalStep: 250, intervalMax: 1000 },
    },
    { persistent: true, autoDelete: false, expires: 600 },
    cleanups,
  );
}

let hazard: string | undefined;
beforeAll(async () => {
  hazard = await restartHazard();
}, 120_000);

describe.sequential('broker app restart', () => {
  beforeEach((ctx) => {
    // Never take the shared broker down when it might not come back (see restartHazard).
    if (hazard !== undefined) ctx.skip(hazard);
  });

  it('persistent results stored before stop_app are all readable after start_app', async () => {
    const exchange = uid('persist-ex');
    const writer = persistentBackend(exchange);
    const ids = Array.from({ length: 100 }, () => newTaskId());
    await Promise.all(ids.map((id, i) => writer.storeResult(id, { i }, 'SUCCESS')));
    try {
      await stopApp();
    } finally {
      await startApp();
    }
    const reader = persistentBackend(exchange);
    const metas = await Promise.all(ids.map((id) => reader.getTaskMeta(id)));
    expect(metas.map((m) => m.status)).toEqual(ids.map(() => 'SUCCESS'));
    expect(metas.map((m) => (m.result as { i: number }).i)).toEqual(ids.map((_, i) => i));
    // Cleanup: the queues are durable and not auto-delete.
    for (const id of ids) await reader.forget(id);
  });

  it('a getMany in progress across stop_app/start_app yields every result once', async () => {
    const exchange = uid('restart-ex');
    const reader = persistentBackend(exchange);
    const writer = persistentBackend(exchange);
    const ids = Array.from({ length: 300 }, () => newTaskId());
    const seen: string[] = [];
    let lost = false;
    reader.connection.on('disconnect', () => (lost = true));
    const collecting = (async () => {
      for await (const [id] of reader.getMany(ids, { timeout: 120_000 })) seen.push(id);
    })();
    await Promise.all(ids.slice(0, 100).map((id) => writer.storeResult(id, 1, 'SUCCESS')));
    await waitUntil(() => seen.length === 100, { what: 'the first 100 results', timeout: 20_000 });
    try {
      await stopApp();
      await waitUntil(() => lost, { what: 'disconnect', timeout: 20_000 });
    } finally {
      await startApp();
    }
    // Stores retry through the outage's tail and land once the consumer is back.
    await Promise.all(ids.slice(100).map((id) => writer.storeResult(id, 2, 'SUCCESS')));
    await collecting;
    expect(seen.length).toBe(300);
    expect(new Set(seen)).toEqual(new Set(ids));
    for (const id of ids) await writer.forget(id);
  });
});
