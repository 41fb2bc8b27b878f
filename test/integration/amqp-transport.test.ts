import { execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChannelError, ConnectionError, type CeleryAmqpError } from '../../src/errors.js';
import { typeTable } from '../../src/transport/amqp/amqp-codec.js';
import { AmqpTransport } from '../../src/transport/amqp/amqp-transport.js';
import type {
  ConnectOptions,
  Delivery,
  ReturnedMessage,
  TransportConnection,
} from '../../src/transport/types.js';
import { parseBrokerUrl } from '../../src/transport/url.js';
import { closeConnection, waitForConnection } from '../fault/helpers.js';
import { BROKER_URL, brokerUrlWith, cleanupStack, uid } from '../fixture.js';
import { privateVhost, rabbitmqctl, vhostUrl } from '../rabbitmq-admin.js';

const run = promisify(execFile);
const transport = new AmqpTransport();
const opened: TransportConnection[] = [];

async function connect(url = BROKER_URL, options?: ConnectOptions): Promise<TransportConnection> {
  const conn = await transport.connect(parseBrokerUrl(url)[0]!, options);
  opened.push(conn);
  return conn;
}

/** The typed error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<CeleryAmqpError> {
  try {
    await promise;
  } catch (err) {
    return err as CeleryAmqpError;
  }
  throw new Error('expected a rejection');
}

/** A broker-side cleanup on a channel of its own, so a closed test channel does not matter. */
async function cleanup(queues: string[], exchanges: string[] = []): Promise<void> {
  const conn = await connect();
  const ch = await conn.createChannel();
  for (const q of queues) await ch.deleteQueue({ queue: q });
  for (const x of exchanges) await ch.deleteExchange({ exchange: x });
  await conn.close();
}

/** A port on 127.0.0.1 that nothing listens on. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

describe('connecting', () => {
  it('connects, reports a redacted URL and closes cleanly', async () => {
    const conn = await connect(brokerUrlWith((u) => (u.search = 'heartbeat=5')));
    expect(conn.closed).toBe(false);
    expect(conn.displayUrl).toBe(
      brokerUrlWith((u) => {
        u.password = '****';
        u.search = 'heartbeat=5';
      }),
    );
    expect(conn.displayUrl).toMatch(/^amqp:\/\/[^:]+:\*\*\*\*@/);
    const closed = once(conn, 'close');
    await conn.close();
    expect(await closed).toEqual([]);
    expect(conn.closed).toBe(true);
    await conn.close(); // idempotent
    expect((await rejection(conn.createChannel())).code).toBe('CONNECTION_CLOSED');
  });

  it('uses the vhost from the URL', async () => {
    const cleanups = cleanupStack();
    try {
      const { vhost, url } = await privateVhost(cleanups, 'cab-vhost');
      const conn = await connect(url);
      const ch = await conn.createChannel();
      const q = uid('cab-amqp');
      await ch.declareQueue({ queue: q, autoDelete: false });
      const stdout = await rabbitmqctl(['list_queues', '-q', '-p', vhost, 'name']);
      expect(stdout.split('\n').map((l) => l.trim())).toContain(q);
      // The same queue does not exist in the default vhost.
      const other = await (await connect()).createChannel();
      expect((await rejection(other.declareQueue({ queue: q, passive: true }))).code).toBe('NOT_FOUND');
    } finally {
      await cleanups.run();
    }
  });

  it('rejects wrong credentials with ACCESS_REFUSED, not recoverable, without the password', async () => {
    const err = await rejection(connect(brokerUrlWith((u) => (u.password = 'Wr0ngPassw0rd'))));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe('ACCESS_REFUSED');
    expect(err.recoverable).toBe(false);
    expect(err.message).not.toContain('Wr0ngPassw0rd');
    expect(err.message).toContain('****');
  });

  it('rejects an unknown vhost with NOT_ALLOWED, not recoverable', async () => {
    const err = await rejection(connect(vhostUrl(uid('no-such-vhost'))));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe('NOT_ALLOWED');
    expect(err.recoverable).toBe(false);
  });

  it('rejects a closed port with CONNECTION_REFUSED, recoverable', async () => {
    const port = await deadPort();
    const err = await rejection(connect(`amqp://guest:S3cretPw@127.0.0.1:${port}//`));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe('CONNECTION_REFUSED');
    expect(err.recoverable).toBe(true);
    expect(err.message).not.toContain('S3cretPw');
  });

  it('rejects at once with an aborted signal', async () => {
    const err = await rejection(connect(BROKER_URL, { signal: AbortSignal.abort() }));
    expect(err.code).toBe('ABORTED');
  });

  it('walks a failover list: the dead address fails typed, the next one connects', async () => {
    const port = await deadPort();
    const addresses = parseBrokerUrl(`${brokerUrlWith((u) => (u.port = String(port)))};${BROKER_URL}`);
    expect(addresses.map((a) => a.port)).toEqual([port, Number(new URL(BROKER_URL).port || 5672)]);
    const errors: string[] = [];
    let conn: TransportConnection | undefined;
    for (const address of addresses) {
      try {
        conn = await transport.connect(address);
        opened.push(conn);
        break;
      } catch (err) {
        errors.push((err as CeleryAmqpError).code);
      }
    }
    expect(errors).toEqual(['CONNECTION_REFUSED']);
    expect(conn?.closed).toBe(false);
  });

  it('passes the heartbeat query parameter (seconds) to the broker', async () => {
    const name = uid('cab-hb');
    await connect(
      brokerUrlWith((u) => (u.search = 'heartbeat=7')),
      {
        clientProperties: { connection_name: name },
      },
    );
    const stdout = await rabbitmqctl(['list_connections', '-q', 'client_properties', 'timeout']);
    const line = stdout.split('\n').find((l) => l.includes(name));
    expect(line?.trim().endsWith('7')).toBe(true);
  });
});

describe('channel operations', () => {
  it('keeps call order: 1,000 nowait declare + bind + publish stores, none awaited, all arrive', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const exchange = uid('cab-results');
    const queues = Array.from({ length: 1000 }, () => uid('cab-amqp'));
    const pending: Array<Promise<unknown>> = [
      ch.declareExchange({ exchange, type: 'direct', durable: false, nowait: true }),
    ];
    for (const [i, q] of queues.entries()) {
      pending.push(
        ch.declareQueue({
          queue: q,
          durable: true,
          autoDelete: true,
          arguments: { 'x-expires': 60_000 },
          nowait: true,
        }),
        ch.bindQueue({ queue: q, exchange, routingKey: q, arguments: {}, nowait: true }),
        ch.publish({
          exchange,
          routingKey: q,
          body: Buffer.from(`result ${i}`),
          properties: { contentType: 'text/plain', deliveryMode: 2 },
        }),
      );
    }
    const results = await Promise.all(pending);
    expect(results.filter((r) => r === null)).toHaveLength(1000); // nowait declares resolve null
    try {
      for (const [i, q] of queues.entries()) {
        const delivery = await ch.get({ queue: q, noAck: true });
        expect(delivery?.body.toString()).toBe(`result ${i}`);
      }
      expect(ch.closed).toBe(false);
    } finally {
      await cleanup(queues, [exchange]);
    }
  });

  it('a publish right after un-awaited RPC declares and binds is not overtaken', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const exchange = uid('cab-x');
    const q = uid('cab-amqp');
    // No nowait: these are round trips amqplib queues client-side, the publish is not.
    const steps = [
      ch.declareExchange({ exchange, type: 'direct', durable: false }),
      ch.declareQueue({ queue: q, autoDelete: false }),
      ch.bindQueue({ queue: q, exchange, routingKey: 'k' }),
      ch.publish({ exchange, routingKey: 'k', body: Buffer.from('after-bind') }),
    ];
    await Promise.all(steps);
    try {
      expect((await ch.get({ queue: q, noAck: true }))?.body.toString()).toBe('after-bind');
    } finally {
      await cleanup([q], [exchange]);
    }
  });

  it('backpressure: a burst beyond the write buffer waits for drain and keeps order', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const q = uid('cab-amqp');
    await ch.declareQueue({ queue: q, autoDelete: false });
    try {
      // amqplib's channel buffer holds 1,024 frames; 5,000 publishes in one tick overflow it.
      const body = Buffer.alloc(4096, 0x61);
      const sent = Array.from({ length: 5000 }, (_, i) =>
        ch.publish({ exchange: '', routingKey: q, body, properties: { messageId: String(i) } }),
      );
      await Promise.all(sent);
      const ids: string[] = [];
      const tag = await ch.consume({ queue: q, noAck: true }, (d) => ids.push(d.properties.messageId!));
      while (ids.length < 5000) await ch.declareQueue({ queue: q, passive: true });
      await ch.cancel({ consumerTag: tag });
      expect(ids).toEqual(Array.from({ length: 5000 }, (_, i) => String(i)));
    } finally {
      await cleanup([q]);
    }
  });

  it('declares like Python kombu: same flags accepted, durable flipped is a 406 rejection', async () => {
    const q = uid('cab-py');
    const exchange = uid('cab-pyx');
    const script = `
from kombu import Connection, Exchange, Queue
with Connection(${JSON.stringify(BROKER_URL)}) as conn:
    ch = conn.channel()
    ex = Exchange(${JSON.stringify(exchange)}, type='direct', durable=True, auto_delete=False)
    Queue(${JSON.stringify(q)}, ex, routing_key=${JSON.stringify(q)}, durable=True, auto_delete=True,
          queue_arguments={'x-expires': 86400000})(ch).declare()
`;
    await run('/usr/bin/python3', ['-c', script]);
    try {
      const conn = await connect();
      const ch = await conn.createChannel();
      await ch.declareExchange({ exchange, type: 'direct', durable: true });
      const ok = await ch.declareQueue({
        queue: q,
        durable: true,
        autoDelete: true,
        arguments: { 'x-expires': 86400000 },
      });
      expect(ok).toMatchObject({ queue: q, messageCount: 0 });
      await ch.bindQueue({ queue: q, exchange, routingKey: q });

      const closeEvent = once(ch, 'close');
      const err = await rejection(
        ch.declareQueue({ queue: q, durable: false, autoDelete: true, arguments: { 'x-expires': 86400000 } }),
      );
      expect(err).toBeInstanceOf(ChannelError);
      expect(err.code).toBe('PRECONDITION_FAILED');
      expect(err.replyCode).toBe(406);
      expect(err.message).toContain('durable');
      expect(await closeEvent).toEqual([err]);
      expect(ch.closed).toBe(true);
      expect((await rejection(ch.declareQueue({ queue: q, passive: true }))).code).toBe(
        'PRECONDITION_FAILED',
      );
      // The connection survives a channel error.
      const again = await conn.createChannel();
      expect(await again.declareQueue({ queue: q, passive: true })).toMatchObject({ queue: q });
    } finally {
      await cleanup([q], [exchange]);
    }
  });

  it('types table integers as Python does: signed 32-bit when they fit, 64-bit above', () => {
    expect(typeTable({ 'x-expires': 86400000, small: 10, big: 2 ** 40, f: 1.5, s: 'x', n: [1] })).toEqual({
      'x-expires': { '!': 'int', value: 86400000 },
      small: { '!': 'int', value: 10 },
      big: 2 ** 40,
      f: 1.5,
      s: 'x',
      n: [{ '!': 'int', value: 1 }],
    });
  });

  it('a nowait declare that fails closes the channel with the typed error and fails what follows', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const exchange = uid('cab-x');
    await ch.declareExchange({ exchange, type: 'direct', durable: false });
    try {
      const closeEvent = once(ch, 'close');
      await ch.declareExchange({ exchange, type: 'fanout', durable: false, nowait: true }); // resolves: no reply
      const next = ch.declareQueue({ queue: '', exclusive: true });
      const [closeErr] = (await closeEvent) as [CeleryAmqpError];
      expect(closeErr.code).toBe('PRECONDITION_FAILED');
      expect(await rejection(next)).toBe(closeErr);
    } finally {
      await cleanup([], [exchange]);
    }
  });

  it('confirm channel: ack resolves, nack rejects PUBLISH_NACKED, a close first rejects typed', async () => {
    const conn = await connect();
    const ch = await conn.createChannel({ confirm: true });
    expect(ch.confirm).toBe(true);
    const q = uid('cab-amqp');
    const full = uid('cab-amqp');
    await ch.declareQueue({ queue: q, autoDelete: false });
    await ch.declareQueue({ queue: full, arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' } });
    try {
      await ch.publish({
        exchange: '',
        routingKey: q,
        body: Buffer.from('a'),
        properties: { deliveryMode: 2 },
      });
      const nacked = await rejection(ch.publish({ exchange: '', routingKey: full, body: Buffer.from('b') }));
      expect(nacked).toBeInstanceOf(ChannelError);
      expect(nacked.code).toBe('PUBLISH_NACKED');
      // A publish to a missing exchange closes the channel (404) before any confirm.
      const lost = await rejection(
        ch.publish({ exchange: uid('no-such-exchange'), routingKey: 'k', body: Buffer.from('c') }),
      );
      expect(lost.code).toBe('NOT_FOUND');
      expect(ch.closed).toBe(true);
    } finally {
      await cleanup([q, full]);
    }
  });

  it('returns an unroutable mandatory message through the return event', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const returned = once(ch, 'return') as Promise<[ReturnedMessage]>;
    const key = uid('nobody');
    await ch.publish({
      exchange: '',
      routingKey: key,
      body: Buffer.from('lost'),
      properties: { correlationId: 'c1', headers: { n: 1 } },
      mandatory: true,
    });
    const [message] = await returned;
    expect(message).toMatchObject({ replyCode: 312, replyText: 'NO_ROUTE', exchange: '', routingKey: key });
    expect(message.body.toString()).toBe('lost');
    expect(message.properties).toEqual({ correlationId: 'c1', headers: { n: 1 } });
  });

  it('delivers with camelCased properties, honours flow(false) and reports a server cancel', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const q = uid('cab-amqp');
    await ch.declareQueue({ queue: q, autoDelete: false });
    const properties = {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      headers: { compression: 'application/x-gzip', nested: { a: 'b' } },
      deliveryMode: 2 as const,
      priority: 0,
      correlationId: 'corr',
      replyTo: 'reply',
      expiration: '60000',
      messageId: 'mid',
      timestamp: 1700000000,
      type: 't',
      appId: 'app',
    };
    const seen: Delivery[] = [];
    let arrived = (): void => undefined;
    const tag = await ch.consume({ queue: q }, (d) => {
      seen.push(d);
      arrived();
    });
    await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('{"n":1}'), properties });
    await new Promise<void>((resolve) => (arrived = resolve));
    expect(seen[0]!.properties).toEqual(properties);
    expect(seen[0]!.fields).toMatchObject({
      consumerTag: tag,
      exchange: '',
      routingKey: q,
      redelivered: false,
    });

    await ch.flow({ active: false });
    await ch.publish({ exchange: '', routingKey: q, body: Buffer.from('held') });
    // A round trip on the same channel: the delivery has reached us, but is held.
    await ch.declareQueue({ queue: q, passive: true });
    await ch.qos({ prefetchSize: 0, prefetchCount: 10 });
    expect(seen).toHaveLength(1);
    await ch.flow({ active: true });
    expect(seen.map((d) => d.body.toString())).toEqual(['{"n":1}', 'held']);
    ch.ack({ deliveryTag: seen[1]!.fields.deliveryTag, multiple: true });

    const cancelled = once(ch, 'cancel');
    const other = await conn.createChannel();
    await other.deleteQueue({ queue: q });
    expect(await cancelled).toEqual([tag]);
    expect(ch.closed).toBe(false);
  });

  it('get, purge, delete, unbind and exchange-to-exchange bindings behave as RabbitMQ does', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const src = uid('cab-src');
    const dst = uid('cab-dst');
    const q = uid('cab-amqp');
    await ch.declareExchange({ exchange: src, type: 'topic', durable: false });
    await ch.declareExchange({ exchange: dst, type: 'fanout', durable: false });
    await ch.bindExchange({ destination: dst, source: src, routingKey: 'a.*' });
    await ch.declareQueue({ queue: q, autoDelete: false });
    await ch.bindQueue({ queue: q, exchange: dst, routingKey: '' });
    try {
      await ch.publish({ exchange: src, routingKey: 'a.b', body: Buffer.from('1') });
      await ch.publish({ exchange: src, routingKey: 'x.y', body: Buffer.from('unrouted') });
      await ch.publish({ exchange: src, routingKey: 'a.c', body: Buffer.from('2') });
      const first = await ch.get({ queue: q });
      expect(first?.body.toString()).toBe('1');
      expect(first?.fields.messageCount).toBe(1);
      ch.reject({ deliveryTag: first!.fields.deliveryTag, requeue: true });
      expect(await ch.purgeQueue({ queue: q })).toBe(2);
      expect(await ch.get({ queue: q })).toBeNull();
      await ch.unbindExchange({ destination: dst, source: src, routingKey: 'a.*' });
      await ch.publish({ exchange: src, routingKey: 'a.b', body: Buffer.from('3') });
      await ch.unbindQueue({ queue: q, exchange: dst, routingKey: '' });
      expect(await ch.deleteQueue({ queue: q })).toBe(0);
      expect((await rejection(ch.get({ queue: q }))).code).toBe('NOT_FOUND');
    } finally {
      await cleanup([q], [src, dst]);
    }
  });

  it('a closed channel rejects operations and throws on ack', async () => {
    const conn = await connect();
    const ch = await conn.createChannel();
    const closing = ch.close();
    expect((await rejection(ch.declareQueue({ queue: '', exclusive: true }))).code).toBe('CHANNEL_CLOSED');
    await closing;
    expect(ch.closed).toBe(true);
    expect(() => ch.ack({ deliveryTag: 1 })).toThrow(ChannelError);
    await ch.close(); // idempotent
  });
});

describe('losing the connection', () => {
  it('a broker-side close emits close with a recoverable ConnectionError on connection and channels', async () => {
    const name = uid('cab-kill');
    const conn = await connect(BROKER_URL, { clientProperties: { connection_name: name } });
    const ch = await conn.createChannel();
    const connClosed = once(conn, 'close') as Promise<[CeleryAmqpError]>;
    const chClosed = once(ch, 'close') as Promise<[CeleryAmqpError]>;
    // Close only our connection: other suites share the broker.
    await waitForConnection(name);
    expect(await closeConnection(name, 'test says bye')).toBe(1);
    const [connErr] = await connClosed;
    expect(connErr).toBeInstanceOf(ConnectionError);
    expect(connErr.recoverable).toBe(true);
    expect(connErr.code).toBe('CONNECTION_FORCED');
    const [chErr] = await chClosed;
    expect(chErr).toBe(connErr);
    expect(conn.closed).toBe(true);
    expect(await rejection(ch.declareQueue({ queue: '', exclusive: true }))).toBe(connErr);
    expect(await rejection(conn.createChannel())).toBe(connErr);
  });
});

describe('amqps', () => {
  let dir: string;
  let server: tls.Server;
  let port: number;
  let ca: Buffer;
  const proxied = new Set<tls.TLSSocket>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cab-tls-'));
    const ssl = (...args: string[]): void => {
      execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    };
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=cab-test-ca',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    );
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
    );
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
    ssl(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      'server.pem',
      '-extfile',
      'ext.cnf',
    );
    ca = readFileSync(join(dir, 'ca.pem'));
    server = tls.createServer(
      { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) },
      (client) => {
        const upstream = net.connect(5672, '127.0.0.1');
        proxied.add(client);
        client.on('close', () => proxied.delete(client));
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
      },
    );
    server.on('tlsClientError', () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects through TLS with the CA', async () => {
    const conn = await connect(`amqps://guest:guest@localhost:${port}//`, { tls: { ca } });
    const ch = await conn.createChannel();
    const ok = await ch.declareQueue({ queue: '', exclusive: true });
    expect(ok?.queue).toMatch(/^amq\.gen-/);
  });

  it('a lost socket closes with CONNECTION_CLOSED and rejects the pending operation with it', async () => {
    const conn = await connect(`amqps://guest:guest@localhost:${port}//`, { tls: { ca } });
    const ch = await conn.createChannel();
    const closed = once(conn, 'close') as Promise<[CeleryAmqpError]>;
    const pending = ch.declareQueue({ queue: '', exclusive: true });
    for (const socket of proxied) socket.destroy();
    const [err] = await closed;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe('CONNECTION_CLOSED');
    expect(err.recoverable).toBe(true);
    expect(await rejection(pending)).toBe(err);
  });

  it('without the CA fails with a typed, non-recoverable ConnectionError and no password', async () => {
    const err = await rejection(connect(`amqps://guest:T1sPassw0rd@localhost:${port}//`));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe('CONNECTION_REFUSED');
    expect(err.recoverable).toBe(false);
    expect(err.message).toMatch(/certificate/i);
    expect(err.message).not.toContain('T1sPassw0rd');
  });
});
