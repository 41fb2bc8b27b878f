/**
 * DecodeLimits at every result door, on memory:// and RabbitMQ: each limit crossed is a
 * DecodeLimitError naming the task and the limit, a wait for the id rejects at once (not at
 * its timeout), and the message stays in its queue where AMQP allows it (every AMQPBackend
 * path with `autoDelete: false`; rpc:// replies are no-ack and cannot stay).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import type { AMQPBackendOptions } from '../../src/celery/backend-options.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { DecodeLimitError, EncodeLimitError } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { Producer } from '../../src/kombu/producer.js';
import { cleanupStack, newTaskId, uid, waitUntil } from '../fixture.js';
import { aliasBombValue, issue13Cases, nestedValue } from '../hostile/bodies.js';
import type { Issue13Case } from '../hostile/bodies.js';
import { transports } from './transports.js';

/** Long enough that a wait which does not reject at once fails the test instead. */
const NEVER = 10 * 60_000;

const rk = (id: string): string => id.replaceAll('-', '');

type Bomb = Issue13Case;

/** Issue 13's three bodies, the zlib one inflating to 64 MiB (the door tests' limit is 1 MiB). */
const BOMBS: readonly Bomb[] = issue13Cases(1);

/** The limits of the door tests: the defaults, with a small decompressed size (1 MiB). */
const LIMITS = { maxDecodedBytes: 1024 * 1024 };

function expectLimit(err: unknown, id: string, bomb: Bomb): void {
  expect(err).toBeInstanceOf(DecodeLimitError);
  const e = err as DecodeLimitError;
  expect(e.code).toBe(bomb.code);
  expect(e.limit).toBe(bomb.limit);
  expect(e.message).toContain(id);
  expect(e.message).toContain(`limit ${bomb.limit} =`);
}

describe.each(transports)('decode limits at the result doors on $name', (t) => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  async function amqpBackend(options: AMQPBackendOptions = {}): Promise<AMQPBackend> {
    const connection = new Connection(t.url, { heartbeat: 0 });
    const exchange = uid('limits-results');
    const backend = new AMQPBackend({
      connection,
      exchange,
      persistent: false,
      expires: 60,
      accept: ['json', 'yaml'],
      decodeLimits: LIMITS,
      ...options,
    });
    cleanups.push(async () => {
      await connection.close();
    });
    cleanups.push(async () => {
      const ch = await connection.channel();
      await ch.deleteExchange({ exchange }).catch(() => undefined);
    });
    cleanups.push(() => backend.close());
    return backend;
  }

  /** Declares the task's queue as a store would and publishes the raw body into it. */
  async function publishTo(backend: AMQPBackend, id: string, bomb: Bomb): Promise<void> {
    const ch = await backend.connection.channel({ confirm: true });
    cleanups.push(async () => {
      const c = await backend.connection.channel();
      await c.deleteQueue({ queue: rk(id) }).catch(() => undefined);
    });
    await backend.queueFor(rk(id), ch).declare();
    await new Producer(ch, { exchange: backend.exchange, autoDeclare: false }).publish(bomb.body(id), {
      routingKey: rk(id),
      contentType: bomb.contentType,
      headers: bomb.headers,
    });
    await ch.close();
  }

  /** The task queue's declare-ok: messages ready and consumers. */
  async function queueState(
    backend: AMQPBackend,
    id: string,
  ): Promise<{ messageCount: number; consumerCount: number }> {
    const ch = await backend.connection.channel();
    try {
      const ok = await ch.declareQueue({ queue: rk(id), passive: true });
      if (ok === null) throw new Error('no declare-ok');
      return ok;
    } finally {
      await ch.close();
    }
  }

  async function depth(backend: AMQPBackend, id: string): Promise<number> {
    return (await queueState(backend, id)).messageCount;
  }

  for (const bomb of BOMBS) {
    it(`${bomb.name}: getTaskMeta (basic.get) refuses it and requeues it`, async () => {
      const backend = await amqpBackend();
      const id = newTaskId();
      await publishTo(backend, id, bomb);
      expectLimit(await backend.getTaskMeta(id).catch((e: unknown) => e), id, bomb);
      expect(await depth(backend, id)).toBe(1);
    });

    it(`${bomb.name}: waitFor's fast path rejects at once and requeues it`, async () => {
      const backend = await amqpBackend();
      const id = newTaskId();
      await publishTo(backend, id, bomb);
      expectLimit(await backend.waitFor(id, { timeout: NEVER }).catch((e: unknown) => e), id, bomb);
      expect(await depth(backend, id)).toBe(1);
    });

    it(`${bomb.name}: waitFor's consumer rejects at once; the message stays (autoDelete false)`, async () => {
      const backend = await amqpBackend({ autoDelete: false });
      const id = newTaskId();
      // The wait starts on an empty queue: the bomb reaches its consumer.
      await backend.getTaskMeta(id);
      const wait = backend.waitFor(id, { timeout: NEVER }).catch((e: unknown) => e);
      await waitUntil(async () => (await queueState(backend, id)).consumerCount === 1, {
        what: 'the wait consuming',
      });
      await publishTo(backend, id, bomb);
      expectLimit(await wait, id, bomb);
      expect(await depth(backend, id)).toBe(1);
    });

    it(`${bomb.name}: getMany fails naming the task; its message stays (autoDelete false)`, async () => {
      const backend = await amqpBackend({ autoDelete: false });
      const good = newTaskId();
      const bad = newTaskId();
      await backend.storeResult(good, 1, 'SUCCESS');
      await publishTo(backend, bad, bomb);
      const seen: string[] = [];
      const err = await (async () => {
        for await (const [id] of backend.getMany([good, bad], { timeout: NEVER })) seen.push(id);
      })().catch((e: unknown) => e);
      expectLimit(err, bad, bomb);
      expect(await depth(backend, bad)).toBe(1);
    });

    it(`${bomb.name}: an rpc:// wait rejects at once (the no-ack reply cannot stay)`, async () => {
      const { client, send } = await rpcClient();
      const id = newTaskId();
      const wait = client.waitFor(id, { timeout: NEVER }).catch((e: unknown) => e);
      await send(id, bomb);
      expectLimit(await wait, id, bomb);
      expect(client.droppedMessages).toBe(1);
    });

    it(`${bomb.name}: an rpc:// reply nobody waited for fails every later poll, wait and getMany of its id`, async () => {
      const errors: Error[] = [];
      const { client, send } = await rpcClient();
      client.on('error', (err) => errors.push(err));
      const id = newTaskId();
      await send(id, bomb);
      await waitUntil(() => errors.length === 1, { what: 'the dropped reply reported' });
      expectLimit(await client.getTaskMeta(id).catch((e: unknown) => e), id, bomb);
      expectLimit(await client.waitFor(id, { timeout: NEVER }).catch((e: unknown) => e), id, bomb);
      // Kept until a good reply for the id comes: a getMany over it fails at once too.
      const many = await (async () => {
        for await (const _ of client.getMany([id], { timeout: NEVER })) void _;
      })().catch((e: unknown) => e);
      expectLimit(many, id, bomb);
    });
  }

  it('an rpc:// getMany fails at once on an undecodable reply for one of its ids', async () => {
    const { client, send } = await rpcClient();
    const ids = [newTaskId(), newTaskId()];
    const bomb = BOMBS[0] as Bomb;
    const many = (async () => {
      for await (const _ of client.getMany(ids, { timeout: NEVER })) void _;
    })().catch((e: unknown) => e);
    await send(ids[1] as string, bomb);
    expectLimit(await many, ids[1] as string, bomb);
  });

  it('the decodeLimits option sets each limit; maxBodyBytes stays a shorthand', async () => {
    const backend = await amqpBackend({ decodeLimits: { maxDepth: 5 } });
    expect(backend.decodeLimits.maxDepth).toBe(5);
    expect(backend.decodeLimits.maxDecodedBytes).toBe(64 * 1024 * 1024);
    const id = newTaskId();
    const ok = newTaskId();
    await backend.storeResult(ok, nestedValue(4), 'SUCCESS');
    expect((await backend.getTaskMeta(ok)).status).toBe('SUCCESS');
    // Stored by a writer with higher limits: refused on reading, naming the limit's value.
    const writer = await amqpBackend({ exchange: backend.exchange.name });
    await writer.storeResult(id, nestedValue(5), 'SUCCESS');
    const err = await backend.getTaskMeta(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecodeLimitError);
    expect((err as DecodeLimitError).max).toBe(5);
    const shorthand = new AMQPBackend({ connection: backend.connection, maxBodyBytes: 100 });
    expect(shorthand.decodeLimits.maxDecodedBytes).toBe(100);
    await shorthand.close();
    expect(() => new AMQPBackend({ connection: backend.connection, decodeLimits: { maxDepth: -1 } })).toThrow(
      /maxDepth/,
    );
  });

  it('a store refuses a result its readers would refuse (alias bomb, depth): typed, nothing sent', async () => {
    const backend = await amqpBackend();
    const id = newTaskId();
    const bomb = await backend.storeResult(id, aliasBombValue(), 'SUCCESS').catch((e: unknown) => e);
    expect(bomb).toBeInstanceOf(EncodeLimitError);
    expect((bomb as EncodeLimitError).message).toContain(`result of task ${id}`);
    const deep = await backend.storeResult(id, nestedValue(1000), 'SUCCESS').catch((e: unknown) => e);
    expect(deep).toMatchObject({ code: 'TOO_DEEP', limit: 'maxDepth' });
    expect((await backend.getTaskMeta(id)).status).toBe('PENDING');
  });

  async function rpcClient(): Promise<{
    client: RPCBackend;
    send: (id: string, bomb: Bomb) => Promise<void>;
  }> {
    const connection = new Connection(t.url, { heartbeat: 0 });
    cleanups.push(() => connection.close());
    const client = new RPCBackend({ connection, accept: ['json', 'yaml'], decodeLimits: LIMITS });
    cleanups.push(() => client.close());
    await client.ensureReplyQueue();
    const ch = await connection.channel({ confirm: true });
    cleanups.push(() => ch.close());
    const send = (id: string, bomb: Bomb): Promise<void> =>
      new Producer(ch, { autoDeclare: false }).publish(bomb.body(id), {
        routingKey: client.oid,
        contentType: bomb.contentType,
        headers: bomb.headers,
        correlationId: id,
      });
    return { client, send };
  }
});
