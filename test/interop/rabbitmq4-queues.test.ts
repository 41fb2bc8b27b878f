/**
 * The RabbitMQ 4.3-safe reply queue against Celery's own declaration on a real RabbitMQ:
 * `replyQueueDurable` declares what Celery's main branch declares (durable=True,
 * auto_delete=True, x-expires; commit 323f21d), checked by declaring the same queue from
 * both sides in both orders (no 406) and with `rabbitmqctl list_queues`. The Python side is
 * Celery 5.2's RPCBackend with main's `binding` (test/interop/peers/rpc_reply_queue.py).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { Connection } from '../../src/kombu/connection.js';
import { BROKER_URL, cleanupStack, newTaskId } from '../fixture.js';
import { listTable } from '../rabbitmq-admin.js';
import { runPeerScript } from './python.js';

/** Declares `name` from Python with Celery main's (or 5.2's own) reply queue binding. */
async function pythonDeclares(name: string, flavour: 'main' | '5.2'): Promise<unknown> {
  const r = await runPeerScript('rpc_reply_queue.py', [name, flavour, '60'], {
    env: { CELERY_BROKER_URL: BROKER_URL },
  });
  expect(r.code, r.stderr).toBe(0);
  return r.lines[0];
}

describe('rpc:// reply queue for RabbitMQ 4.3 (replyQueueDurable) vs Celery main', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  /** A Node client's reply queue named `oid`, declared and consumed (as before a sendTask). */
  async function nodeDeclares(oid: string): Promise<void> {
    const backend = new RPCBackend({
      connection: BROKER_URL,
      oid,
      replyQueueDurable: true,
      settings: { result_expires: 60 },
    });
    cleanups.push(() => backend.close());
    await backend.ensureReplyQueue({ timeout: 10_000 });
  }

  /** Deleted at the end: a reply queue nobody consumed lives until x-expires. */
  function dropLater(name: string): void {
    cleanups.push(async () => {
      const conn = new Connection(BROKER_URL);
      try {
        await (await conn.channel()).deleteQueue({ queue: name });
      } finally {
        await conn.close();
      }
    });
  }

  it('Node first, then Python (main): no 406; Python 5.2 (durable=False) is refused', async () => {
    const oid = newTaskId();
    dropLater(oid);
    await nodeDeclares(oid);
    expect(await pythonDeclares(oid, 'main')).toEqual({ declared: oid });
    // The check can fail: Celery <= 5.6's transient reply queue differs in durable.
    expect(await pythonDeclares(oid, '5.2')).toEqual({
      error: expect.stringContaining("inequivalent arg 'durable'") as unknown,
    });
  });

  it('Python (main) first, then Node: no 406, and rabbitmqctl shows the same queue both ways', async () => {
    const fromPython = newTaskId();
    const fromNode = newTaskId();
    dropLater(fromPython);
    dropLater(fromNode);
    expect(await pythonDeclares(fromPython, 'main')).toEqual({ declared: fromPython });
    await nodeDeclares(fromPython);
    await nodeDeclares(fromNode);
    const rows = (
      await listTable('queues', '/', ['name', 'durable', 'auto_delete', 'exclusive', 'arguments'])
    )
      .filter(([name]) => name === fromPython || name === fromNode)
      .map(([, ...flags]) => flags);
    expect(rows).toEqual([
      ['true', 'true', 'false', '[{"x-expires",60000}]'],
      ['true', 'true', 'false', '[{"x-expires",60000}]'],
    ]);
  });
});
