/**
 * Native delayed delivery on RabbitMQ, Node against kombu: the ladder and a topic task queue
 * declared by the Node Worker in one private vhost and by kombu 5.5's declarations (rebuilt
 * with kombu 5.2's entities in peers/delayed_delivery_peer.py) in another must list the same
 * in `rabbitmqctl list_exchanges / list_queues / list_bindings`; each side redeclares the
 * other's without a 406; and countdown tasks sent by a Node client through the ladder reach
 * the Node Worker no earlier than their delay and within one second of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Celery } from '../../src/celery/app.js';
import type { CeleryAppSettings } from '../../src/celery/app.js';
import { Worker } from '../../src/celery/worker.js';
import { Connection } from '../../src/kombu/connection.js';
import { declareNativeDelayedDelivery } from '../../src/kombu/native-delayed-delivery.js';
import { silentLogger } from '../../src/logger.js';
import { cleanupStack, waitUntil } from '../fixture.js';
import { listTable, privateVhost } from '../rabbitmq-admin.js';
import { runPeerScript } from './python.js';

const QUEUE = 'tasks';
const SETTINGS: Partial<CeleryAppSettings> = {
  task_default_queue: QUEUE,
  task_default_queue_type: 'quorum',
  task_default_exchange_type: 'topic',
};

/** kombu's declarations, from Python, in the vhost of `url`. */
async function kombuDeclares(url: string, args: string[]): Promise<void> {
  const r = await runPeerScript('delayed_delivery_peer.py', args, { env: { CELERY_BROKER_URL: url } });
  expect(r.code, r.stderr).toBe(0);
  expect(r.lines[0]).toEqual({ ok: true });
}

/** What RabbitMQ lists for a vhost: exchanges, queues and bindings, sorted. */
async function topology(
  vhost: string,
): Promise<{ exchanges: string[][]; queues: string[][]; bindings: string[][] }> {
  return {
    exchanges: await listTable('exchanges', vhost, [
      'name',
      'type',
      'durable',
      'auto_delete',
      'internal',
      'arguments',
    ]),
    queues: await listTable('queues', vhost, ['name', 'durable', 'auto_delete', 'exclusive', 'arguments']),
    bindings: await listTable('bindings', vhost, [
      'source_name',
      'source_kind',
      'destination_name',
      'destination_kind',
      'routing_key',
      'arguments',
    ]),
  };
}

describe('native delayed delivery: Node vs kombu on RabbitMQ', () => {
  const cleanups = cleanupStack();
  let node = { vhost: '', url: '' };
  let kombu = { vhost: '', url: '' };
  let worker: Worker;
  let client: Celery;
  const ran = new Map<string, number>();

  beforeAll(async () => {
    node = await privateVhost(cleanups, 'delayed-node');
    kombu = await privateVhost(cleanups, 'delayed-kombu');
    await kombuDeclares(kombu.url, ['ladder', 'quorum']);
    await kombuDeclares(kombu.url, ['bind', QUEUE, QUEUE, 'topic', QUEUE, 'quorum']);
    const server = new Celery({ broker: node.url, settings: SETTINGS, logger: silentLogger });
    cleanups.push(() => server.close());
    worker = new Worker(server, {
      logger: silentLogger,
      heartbeat: false,
      remoteControl: false,
      tasks: { tick: ([tag]) => void ran.set(String(tag), Date.now()) },
    });
    worker.on('error', () => undefined);
    cleanups.push(() => worker.close({ cold: true }));
    await worker.start();
    client = new Celery({ broker: node.url, settings: SETTINGS, logger: silentLogger });
    cleanups.push(() => client.close());
  }, 120_000);

  afterAll(() => cleanups.run(), 60_000);

  it("the Node Worker's ladder and queue bindings list exactly as kombu's", async () => {
    expect(worker.counters.errors).toBe(0);
    const [fromNode, fromKombu] = [await topology(node.vhost), await topology(kombu.vhost)];
    // 28 levels and the task queue; bindings besides the default exchange's: 28 level queues,
    // 27 level-to-level, the delivery exchange, the task queue's own and its two `#.tasks`.
    expect(fromNode.queues).toHaveLength(29);
    expect(fromNode.bindings.filter(([source]) => source !== '')).toHaveLength(28 + 27 + 1 + 3);
    expect(fromNode).toEqual(fromKombu);
  });

  it("each side redeclares the other's ladder and queue without a 406", async () => {
    await kombuDeclares(node.url, ['ladder', 'quorum']);
    await kombuDeclares(node.url, ['bind', QUEUE, QUEUE, 'topic', QUEUE, 'quorum']);
    const conn = new Connection(kombu.url);
    cleanups.push(() => conn.close());
    await declareNativeDelayedDelivery(await conn.channel(), { queueType: 'quorum' });
    const app = new Celery({ broker: conn, settings: SETTINGS, logger: silentLogger });
    cleanups.push(() => app.close());
    await app
      .taskQueue(QUEUE)
      .bind(await conn.channel())
      .declare();
  });

  it('countdown tasks arrive no earlier than their delay and within one second after it', async () => {
    const delays = [1, 2, 3];
    const sent = new Map<string, number>();
    for (const delay of delays) {
      sent.set(String(delay), Date.now());
      await client.sendTask('tick', [String(delay)], {}, { countdown: delay, ignoreResult: true });
    }
    await waitUntil(() => ran.size === delays.length, { timeout: 15_000, what: 'the delayed tasks' });
    const late = delays.map((d) => ran.get(String(d))! - sent.get(String(d))! - d * 1000);
    for (const ms of late) {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThan(1000);
    }
  });
});
