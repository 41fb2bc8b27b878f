/**
 * RabbitMQ 4.3 refuses transient (non-durable) non-exclusive queues by default: the
 * embedded broker emulates it per vhost (`denyTransientNonExclusiveQueues`) with RabbitMQ's
 * close code and text, so the typed error and its hints are tested here; the durable reply
 * queue (`replyQueueDurable`, Celery main's declaration) is what passes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AMQPBackend } from '../../src/celery/amqp-backend.js';
import { Celery } from '../../src/celery/app.js';
import { RPCBackend } from '../../src/celery/rpc-backend.js';
import { ConnectionError, TransientQueueDeniedError, fromReply } from '../../src/errors.js';
import { Connection } from '../../src/kombu/connection.js';
import { silentLogger } from '../../src/logger.js';
import { fromAmqplibClose } from '../../src/transport/amqp/amqp-errors.js';
import { MemoryBroker } from '../../src/transport/memory/broker.js';
import { TRANSIENT_NONEXCL_DENIED_TEXT } from '../../src/transport/memory/virtual-host.js';
import { cleanupStack, newTaskId, uid } from '../fixture.js';
import { startWorker } from '../worker-fixture.js';

/** RabbitMQ 4.3's close text (its deprecation warning cut at 255 characters). */
const BROKER_TEXT =
  '541 INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\n' +
  'By default, this feature is not permitted anymore.\n' +
  'The feature will be removed from a future major RabbitMQ version, regardless of the ' +
  'configuration; actual version to be determined.\nTo...';

describe('RabbitMQ 4.3 transient non-exclusive queues (memory:// emulation)', () => {
  const cleanups = cleanupStack();
  afterEach(() => cleanups.run());

  /** A vhost that refuses transient non-exclusive queues, as RabbitMQ 4.3 does by default. */
  function rabbit43(): string {
    const vhost = uid('rabbit43');
    MemoryBroker.get().configureVhost(vhost, { denyTransientNonExclusiveQueues: true });
    return `memory://localhost/${vhost}`;
  }

  it("the emulated text is RabbitMQ 4.3's, 255 characters as RabbitMQ cuts it", () => {
    expect(TRANSIENT_NONEXCL_DENIED_TEXT).toHaveLength(255);
    expect(`541 ${TRANSIENT_NONEXCL_DENIED_TEXT}`).toBe(BROKER_TEXT);
  });

  it("RabbitMQ's close over amqplib maps to the same error, also with 3.13-4.2's text (feature denied by configuration)", () => {
    const text =
      'INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\nIts use is not permitted per the ' +
      'configuration (overriding the default, which is permitted):\n    "deprecated_features.permit.transient_nonexcl_queues = false"\n...';
    // amqplib reports a server close as an Error with the numeric code.
    const closed = Object.assign(
      new Error(`Connection closed: 541 (INTERNAL-ERROR) with message "${text}"`),
      {
        code: 541,
      },
    );
    const err = fromAmqplibClose(closed);
    expect(err).toBeInstanceOf(TransientQueueDeniedError);
    expect(err).toMatchObject({ code: 'INTERNAL_ERROR', recoverable: false, brokerText: `541 ${text}` });
    // Any other 541 stays a plain connection error.
    expect(fromReply(541, 'INTERNAL_ERROR - something else')).not.toBeInstanceOf(TransientQueueDeniedError);
  });

  it('a transient non-exclusive declare closes the connection with 541; durable or exclusive ones pass', async () => {
    const conn = new Connection(rabbit43());
    cleanups.push(() => conn.close());
    const ch = await conn.channel();
    await expect(ch.declareQueue({ queue: uid('durable'), durable: true })).resolves.toBeDefined();
    await expect(
      ch.declareQueue({ queue: uid('exclusive'), durable: false, exclusive: true }),
    ).resolves.toBeDefined();
    const err: unknown = await ch
      .declareQueue({ queue: uid('transient'), durable: false, autoDelete: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientQueueDeniedError);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: 'INTERNAL_ERROR', recoverable: false, brokerText: BROKER_TEXT });
    const message = (err as Error).message;
    for (const fix of [
      'replyQueueDurable: true',
      'Celery >= 5.7',
      'result_persistent: true',
      'control_queue_exclusive: true',
      'event_queue_exclusive: true',
      'deprecated_features.permit.transient_nonexcl_queues = true',
    ])
      expect(message).toContain(fix);
  });

  it("rpc://: Celery 5.6's transient reply queue is refused with the reply queue named and replyQueueDurable as the fix", async () => {
    const backend = new RPCBackend({ connection: rabbit43() });
    cleanups.push(() => backend.close());
    const err: unknown = await backend.ensureReplyQueue({ timeout: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientQueueDeniedError);
    expect(err).toMatchObject({ code: 'INTERNAL_ERROR', queue: backend.oid, brokerText: BROKER_TEXT });
    expect((err as TransientQueueDeniedError).hint).toMatch(/^replyQueueDurable: true on this RPCBackend/);
    expect((err as Error).message).toContain(`queue '${backend.oid}'`);
  });

  it("rpc:// with replyQueueDurable (Celery main's durable=True, auto_delete=True reply queue) serves a round trip", async () => {
    const url = rabbit43();
    const connection = new Connection(url);
    cleanups.push(() => connection.close());
    const backend = new RPCBackend({ connection, replyQueueDurable: true, settings: { result_expires: 60 } });
    expect(backend.binding).toMatchObject({ durable: true, autoDelete: true, exclusive: false });
    expect(backend.binding.queueArguments).toEqual({ 'x-expires': 60_000 });
    const client = new Celery({ broker: connection, backend, logger: silentLogger });
    cleanups.push(() => client.close());
    const { queue } = await startWorker(
      cleanups,
      { add: ([a, b]) => Number(a) + Number(b) },
      // The worker's own app makes no reply queue: its results go to the client's.
      {},
      url,
    );
    const r = await client.sendTask<number>('add', [20, 22], {}, { queue });
    expect(await r.get({ timeout: 5000 })).toBe(42);
  });

  it('amqp:// with result_persistent false: the generic fix list names result_persistent', async () => {
    const backend = new AMQPBackend({ connection: rabbit43(), settings: { result_persistent: false } });
    cleanups.push(() => backend.close());
    const err: unknown = await backend.getTaskMeta(newTaskId()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientQueueDeniedError);
    expect((err as TransientQueueDeniedError).hint).toContain(
      'amqp:// result queues: result_persistent: true',
    );
  });
});
