/**
 * Failover on the three-node RabbitMQ cluster: a connection losing its node (stop_app, or
 * SIGKILL of the node's VM) moves to the next node at once; shuffle spreads connections;
 * a consumer whose queue lived on the lost node is told ('queueLost') and consumes the queue
 * again on a live node; a durable queue on a lost node is unavailable, not lost.
 */
import { describe, expect, it } from 'vitest';
import { Connection } from '../../src/kombu/connection.js';
import type { ConnectionOptions } from '../../src/kombu/connection.js';
import { Consumer } from '../../src/kombu/consumer.js';
import { Producer } from '../../src/kombu/producer.js';
import { Queue } from '../../src/kombu/queue.js';
import type { QueueLostError } from '../../src/errors.js';
import { uid, waitUntil } from '../fixture.js';
import {
  clusterUrls,
  consumerCounts,
  deleteOnCluster,
  loseNode,
  nodeOf,
  nodeUrl,
  restoreNode,
  clusterHooks,
} from './cluster.js';

const cleanups = clusterHooks();

/** A connection (closed after the test); `urls` its failover list. */
function open(urls: string | string[], options: ConnectionOptions = {}): Connection {
  const c = new Connection(urls, { heartbeat: 0, connectionName: uid('clu-fo'), ...options });
  cleanups.push(() => c.close());
  return c;
}

/** Resolves with the URL of the next 'connect' of `conn`. */
function nextConnect(conn: Connection): Promise<string> {
  return new Promise((resolve) => conn.once('connect', resolve));
}

describe('failover between nodes', () => {
  it.each(['stop-app', 'kill'] as const)(
    'losing the node it is on (%s): the connection moves to the next node at once; a refused node in the pass costs no backoff',
    async (mode) => {
      // A 60 s backoff: a sleep anywhere inside the pass would outlast the test.
      const conn = open(clusterUrls(1), { retryPolicy: { intervalStart: 60_000 } });
      await conn.connect();
      expect(nodeOf(conn.connectedTo)).toBe(1);
      // Node 2, next in the list, is down too: the pass goes 2 (refused), then 3.
      await loseNode(2, 'stop-app');
      const reconnected = nextConnect(conn);
      await loseNode(1, mode);
      expect(nodeOf(await reconnected)).toBe(3);
      expect(nodeOf(conn.connectedTo)).toBe(3);
      const ch = await conn.channel({ timeout: 10_000 });
      expect(
        await ch.declareQueue({ queue: uid('clu-fo-q'), autoDelete: true, durable: false }),
      ).toMatchObject({
        messageCount: 0,
      });
      await restoreNode(1, mode);
      await restoreNode(2, 'stop-app');
    },
  );

  it('shuffle spreads connections over the nodes, and a loss moves each to a live one', async () => {
    const conns = Array.from({ length: 9 }, () => open(clusterUrls(1), { failoverStrategy: 'shuffle' }));
    await Promise.all(conns.map((c) => c.connect()));
    const nodes = conns.map((c) => nodeOf(c.connectedTo));
    expect(new Set(nodes).size).toBeGreaterThan(1);
    const onTwo = conns.filter((c) => nodeOf(c.connectedTo) === 2);
    await loseNode(2, 'kill');
    await waitUntil(() => onTwo.every((c) => c.connected), {
      what: 'every connection of node 2 back',
      timeout: 30_000,
    });
    expect(onTwo.map((c) => nodeOf(c.connectedTo)).filter((n) => n === 2)).toEqual([]);
    await restoreNode(2, 'kill');
  });
});

describe('queues on a lost node', () => {
  it("a transient queue dies with its node: a consumer on another node gets 'queueLost', and consumes it again there", async () => {
    const name = uid('clu-lost');
    cleanups.push(() => deleteOnCluster([name]));
    // Declared through node 1 alone: the queue lives there.
    const home = open(nodeUrl(1));
    await new Queue(name, { durable: false }).bind(home).declare();
    const conn = open(clusterUrls(2));
    const lost: Array<[string, QueueLostError]> = [];
    conn.on('queueLost', (q, err) => lost.push([q, err]));
    const got: unknown[] = [];
    const consumer = new Consumer(conn, {
      queues: [new Queue(name, { durable: false })],
      callbacks: [(body, m) => (got.push(body), m.ack())],
    });
    await consumer.consume();
    const before = new Producer(conn);
    await before.publish('before', { routingKey: name });
    await waitUntil(() => got.length === 1, { what: 'the first message' });
    await loseNode(1, 'kill');
    await waitUntil(() => lost.length === 1, { what: 'queueLost', timeout: 30_000 });
    expect(lost[0]?.[0]).toBe(name);
    expect(lost[0]?.[1].message).toMatch(/cancelled its consumer/);
    expect(nodeOf(conn.connectedTo)).toBe(2);
    // Declared again on node 2 and consumed again (after the event: wait for it), so what is
    // published now arrives.
    await waitUntil(async () => (await consumerCounts([name], 2))[0] === 1, {
      what: 'the queue consumed again on node 2',
      timeout: 30_000,
    });
    await new Producer(conn).publish('after', { routingKey: name, retry: true });
    await waitUntil(() => got.length === 2, { what: 'the message after the loss' });
    expect(got).toEqual(['before', 'after']);
    await restoreNode(1, 'kill');
  });

  it('a durable queue on a stopped node is unavailable, not lost: no queueLost; its messages and consumer come back with the node', async () => {
    const name = uid('clu-durable');
    cleanups.push(() => deleteOnCluster([name]));
    const home = open(nodeUrl(1));
    const q = new Queue(name, { durable: true });
    await q.bind(home).declare();
    await new Producer(home).publish('kept', { routingKey: name, deliveryMode: 2 });
    await home.close();
    const conn = open(clusterUrls(2));
    const lost: string[] = [];
    conn.on('queueLost', (queue) => lost.push(queue));
    await loseNode(1, 'stop-app');
    const got: unknown[] = [];
    const consumer = new Consumer(conn, { queues: [new Queue(name, { durable: true })], callbacks: [] });
    // Consuming while its node is down is refused (404 "home node ... down").
    await expect(consumer.consume()).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await restoreNode(1, 'stop-app');
    consumer.registerCallback((body, m) => (got.push(body), m.ack()));
    await consumer.consume();
    await waitUntil(() => got.length === 1, { what: 'the persistent message' });
    // Now lose the node under the running consumer: cancelled, unavailable, brought back.
    await loseNode(1, 'stop-app');
    await restoreNode(1, 'stop-app');
    await new Producer(conn).publish('after', { routingKey: name, deliveryMode: 2, retry: true });
    await waitUntil(() => got.length === 2, {
      what: 'the consumer restored after the node came back',
      timeout: 30_000,
    });
    expect(got).toEqual(['kept', 'after']);
    expect(lost).toEqual([]);
  });

  it('a message published to a durable classic queue whose node is down is never enqueued: the broker confirms and drops it; mandatory returns it', async () => {
    const name = uid('clu-drop');
    cleanups.push(() => deleteOnCluster([name]));
    const home = open(nodeUrl(1));
    await new Queue(name, { durable: true }).bind(home).declare();
    await home.close();
    await loseNode(1, 'stop-app');
    const conn = open(nodeUrl(2));
    // Until the other nodes have taken the node as down, a publish may still be routed to its
    // old queue process, and its confirm then comes as a nack, once after two minutes.
    await waitUntil(
      async () =>
        conn
          .channel()
          .then((ch) => ch.declareQueue({ queue: name, passive: true }))
          .then(
            () => false,
            (e: unknown) => /home node/.test(String(e)),
          ),
      { what: 'the node taken as down', interval: 200 },
    );
    const producer = new Producer(await conn.channel({ confirm: true }));
    // The broker confirms it, although no queue took it.
    await producer.publish('dropped', { routingKey: name, deliveryMode: 2, timeout: 30_000 });
    const returned: unknown[] = [];
    const mandatory = new Producer(await conn.channel({ confirm: true }), {
      onReturn: (_err, _ex, _rk, message) => returned.push(message.body.toString()),
    });
    await mandatory.publish('returned', {
      routingKey: name,
      deliveryMode: 2,
      mandatory: true,
      timeout: 30_000,
    });
    await waitUntil(() => returned.length === 1, { what: 'the mandatory message returned' });
    await restoreNode(1, 'stop-app');
    const check = open(nodeUrl(3));
    const ok = await (await check.channel()).declareQueue({ queue: name, passive: true });
    expect(ok?.messageCount).toBe(0);
  });
});
