/**
 * What happens to results when a node dies, for rpc:// (one classic, transient, auto-delete
 * reply queue per client, on the node the client declared it on) and amqp:// (one classic
 * queue per task, on the node of whoever declared it first). Each test is one row of the
 * guarantee table in docs/reliability.md.
 */
import { describe, expect, it } from 'vitest';
import { Worker } from '../../src/celery/worker.js';
import type { TaskHandler } from '../../src/celery/worker.js';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { QueueLostError, TimeoutError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { newTaskId, uid, waitUntil } from '../fixture.js';
import {
  FAST_RETRY,
  appOn,
  clusterUrls,
  consumerCounts,
  declareTaskQueueOn,
  deleteOnCluster,
  loseNode,
  nodeOf,
  nodeUrl,
  restoreNode,
  clusterHooks,
} from './cluster.js';
import type { NodeId } from './cluster.js';

const cleanups = clusterHooks();

/** A task that sleeps `ms` then returns `value`, counting its runs by task id. */
function sleeper(runs: Map<string, number>): TaskHandler {
  return async ([ms, value], _kwargs, ctx) => {
    runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
    await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    return value;
  };
}

/** A task queue on node 3 (never lost here), a client app on `clientNode`, a started Worker on `workerNode`. */
async function setup(clientNode: NodeId, workerNode: NodeId, backend: 'rpc://' | 'amqp://', concurrency = 8) {
  const queue = uid('clu-res');
  cleanups.push(() => deleteOnCluster([queue], [queue]));
  await declareTaskQueueOn(3, queue, 'classic');
  const client = appOn(clientNode, { queue, backend }, cleanups);
  const server = appOn(workerNode, { queue, backend }, cleanups);
  const runs = new Map<string, number>();
  // Every task sent runs at once (none waits in the queue), and stays unacked until stored.
  const worker = new Worker(server, {
    queue,
    concurrency,
    prefetchMultiplier: 1,
    loglevel: 'warning',
    heartbeat: false,
    remoteControl: false,
    tasks: { sleep: sleeper(runs) },
  });
  cleanups.push(() => worker.close());
  await worker.start();
  await client.connection.connect();
  expect(nodeOf(client.connection.connectedTo)).toBe(clientNode);
  expect(nodeOf(server.connection.connectedTo)).toBe(workerNode);
  return { queue, client, server, worker, runs };
}

describe('rpc:// across node loss', () => {
  it.each(['stop-app', 'kill'] as const)(
    "the client's node (%s): every pending wait fails at once with QueueLostError; a reply sent after the recovery arrives on a new wait",
    async (mode) => {
      const { client, runs } = await setup(1, 2, 'rpc://', 20);
      // Long enough to outlast rabbitmqctl stop_app and the failover.
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => client.sendTask('sleep', [6000, i])),
      );
      await waitUntil(() => runs.size === 20, { what: 'all 20 tasks running' });
      // A 60 s deadline, past the test's own timeout: only a failure at the loss ends them in time.
      const waits = results.map((r) => r.get({ timeout: 60_000 }).catch((e: unknown) => e));
      const lostAt = Date.now();
      await loseNode(1, mode);
      const errors = await Promise.all(waits);
      const failedAfterMs = Date.now() - lostAt;
      expect(errors.every((e) => e instanceof QueueLostError)).toBe(true);
      expect(nodeOf(client.connection.connectedTo)).not.toBe(1);
      // The tasks were still running: their replies come after the reply queue was declared again.
      const values = await Promise.all(results.map((r) => client.AsyncResult(r.id).get({ timeout: 30_000 })));
      expect(values).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect([...runs.values()].every((n) => n === 1)).toBe(true);
      console.info(
        `[cluster] rpc client node ${mode}: 20 waits failed with QueueLostError within ${failedAfterMs} ms`,
      );
      await restoreNode(1, mode);
    },
  );

  it("the worker's node (kill): no wait fails; tasks in flight are delivered again and run again (at-least-once)", async () => {
    const { client, runs } = await setup(1, 2, 'rpc://', 10);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => client.sendTask('sleep', [2000, i])),
    );
    await waitUntil(() => runs.size === 10, { what: 'all 10 tasks running' });
    await loseNode(2, 'kill');
    const values = await Promise.all(results.map((r) => r.get({ timeout: 60_000 })));
    expect(values).toEqual(Array.from({ length: 10 }, (_, i) => i));
    // Unacked at the loss: the broker delivers each again to the recovered worker, which runs
    // it again. The first run's store is retried after the reconnect, so its reply (the one
    // the client takes) may come before the second run ends.
    await waitUntil(() => [...runs.values()].every((n) => n >= 2), {
      what: 'every task delivered again and run again',
      timeout: 30_000,
    });
    expect([...runs.values()]).toEqual(Array.from({ length: 10 }, () => 2));
    await restoreNode(2, 'kill');
  });
});

describe('amqp:// across node loss', () => {
  it("the client's node (stop-app): waits go on; the task queues gone with it are reported and declared again, and the results arrive", async () => {
    const { client } = await setup(1, 2, 'amqp://');
    const lost: string[] = [];
    client.connection.on('queueLost', (q) => lost.push(q));
    // Long enough to outlast the checks below and rabbitmqctl stop_app.
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => client.sendTask('sleep', [10_000, i])),
    );
    const waits = results.map((r) => r.get({ timeout: 60_000 }));
    const backend = client.backend as AMQPBackend;
    // Each wait consumes its task queue, which lives on node 1 (the client declared it first).
    const rks = results.map((r) => backend.rkey(r.id));
    await waitUntil(async () => (await consumerCounts(rks)).every((n) => n === 1), {
      what: 'every wait consuming',
      interval: 300,
      timeout: 30_000,
    });
    await loseNode(1, 'stop-app');
    expect(await Promise.all(waits)).toEqual([0, 1, 2, 3, 4]);
    expect(lost.sort()).toEqual(results.map((r) => backend.rkey(r.id)).sort());
    await restoreNode(1, 'stop-app');
  });

  it.each([false, true])(
    'the node a task queue lives on is killed, the client waiting from another (result_persistent %s)',
    async (persistent) => {
      const exchange = uid(`clu-ex-${String(persistent)}`);
      const connect = (first: NodeId): AMQPBackend => {
        const b = new AMQPBackend({
          connection: new Connection(clusterUrls(first), { retryPolicy: FAST_RETRY }),
          exchange,
          persistent,
        });
        cleanups.push(async () => {
          await b.close();
          await b.connection.close();
        });
        return b;
      };
      const client = connect(2);
      // The storing side is on node 1: its first store (STARTED) puts the task queue there.
      const storer = connect(1);
      const id = newTaskId();
      const rk = client.rkey(id);
      cleanups.push(() => deleteOnCluster([rk], [exchange]));
      await storer.markAsStarted(id, { pid: 1 });
      const lost: string[] = [];
      client.connection.on('queueLost', (q) => lost.push(q));
      const wait = client.waitFor(id, { timeout: 60_000 });
      wait.catch(() => undefined);
      await waitUntil(async () => (await consumerCounts([rk]))[0] === 1, {
        what: 'the wait consuming',
        interval: 300,
        timeout: 30_000,
      });
      await loseNode(1, 'kill');
      if (!persistent) {
        // Transient: gone with its node. The client is told, declares it again on node 2 at
        // once and consumes; the storer fails over too and its store lands there.
        await waitUntil(() => lost.length === 1, { what: 'queueLost', timeout: 30_000 });
        expect(lost).toEqual([rk]);
        await storer.markAsDone(id, 'done');
        expect((await wait).result).toBe('done');
      } else {
        // Durable (Celery's default for amqp://): unavailable, not lost. A store meanwhile is
        // refused with a typed 404 naming the home node; once the node is back, the client's
        // consumer is restored on its own and the next store arrives.
        const refused = await storer.markAsDone(id, 'too early').catch((e: unknown) => e);
        expect(refused).toMatchObject({ code: 'NOT_FOUND' });
        expect(String(refused)).toMatch(/home node 'rabbit-c1@localhost'/);
        await restoreNode(1, 'kill');
        await waitUntil(async () => (await consumerCounts([rk]))[0] === 1, {
          what: 'the consumer restored',
          interval: 300,
          timeout: 30_000,
        });
        await storer.markAsDone(id, 'done');
        expect((await wait).result).toBe('done');
        expect(lost).toEqual([]);
      }
    },
  );

  it('a result stored and not yet consumed: lost with its node (transient queue); with result_persistent, unavailable (typed 404 naming the home node) until the node is back', async () => {
    // One exchange per durability: RabbitMQ refuses to redeclare one with the other.
    const exchanges = { true: uid('clu-ex-d'), false: uid('clu-ex-t') };
    const onNode1 = (persistent: boolean): AMQPBackend => {
      const b = new AMQPBackend({ connection: nodeUrl(1), exchange: exchanges[`${persistent}`], persistent });
      cleanups.push(() => b.close());
      return b;
    };
    const reader = (persistent: boolean): AMQPBackend => {
      const b = new AMQPBackend({
        connection: new Connection(clusterUrls(2), { retryPolicy: FAST_RETRY }),
        exchange: exchanges[`${persistent}`],
        persistent,
      });
      cleanups.push(async () => {
        await b.close();
        await b.connection.close();
      });
      return b;
    };
    const [transientId, durableId] = [newTaskId(), newTaskId()];
    cleanups.push(() =>
      deleteOnCluster(
        [transientId, durableId].map((id) => id.replace(/-/g, '')),
        Object.values(exchanges),
      ),
    );
    await onNode1(false).markAsDone(transientId, 'transient');
    await onNode1(true).markAsDone(durableId, 'durable');
    await loseNode(1, 'stop-app');
    const err = await reader(true)
      .waitFor(durableId, { timeout: 10_000 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_FOUND' });
    expect(String(err)).toMatch(/home node 'rabbit-c1@localhost'/);
    await restoreNode(1, 'stop-app');
    expect((await reader(true).waitFor(durableId, { timeout: 10_000 })).result).toBe('durable');
    const gone = await reader(false)
      .waitFor(transientId, { timeout: 1500 })
      .catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(TimeoutError);
  });
});
