import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  TransportChannel,
  TransportConnection,
} from '../../src/transport/types.js';
import { parseBrokerUrl } from '../../src/transport/url.js';

const run = promisify(execFile);
const BROKER = 'amqp://guest:guest@127.0.0.1:5672//';
const transport = new AmqpTransport();
const opened: TransportConnection[] = [];

function uniq(prefix = 'cab-amqp'): string {
  return `${prefix}-${randomUUID()}`;
}

async function connect(url = BROKER, options?: ConnectOptions): Promise<TransportConnection> {
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
  for (const q of queues) await ch.deleteQueue(q);
  for (const x of exchanges) await ch.deleteExchange(x);
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
    const conn = await connect('amqp://guest:guest@127.0.0.1:5672//?heartbeat=5');
    expect(conn.closed).toBe(false);
    expect(conn.displayUrl).toBe('amqp://guest:****@127.0.0.1:5672//?heartbeat=5');
    const closed = once(conn, 'close');
    await conn.close();
    expect(await closed).toEqual([]);
    expect(conn.closed).toBe(true);
    await conn.close(); // idempotent
    expect((await rejection(conn.createChannel())).code).toBe('CONNECTION_CLOSED');
  });

  it('uses the vhost from the URL', async () => {
    const vhost = uniq('cab-vhost');
    await run('rabbitmqctl', ['add_vhost', vhost]);
    try {
      await run('rabbitmqctl', ['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
      const conn = await connect(`amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`);
      const ch = await conn.createChannel();
      const q = uniq();
      await ch.declareQueue(q, { autoDelete: false });
      const { stdout } = await run('rabbitmqctl', ['list_queues', '-q', '-p', vhost, 'name']);
      expect(stdout.split('\n').map((l) => l.trim())).toContain(q);
      // The same queue does not exist in the default vhost.
      const other = await (await connect()).createChannel();
      expect((await rejection(other.declareQueue(q, { passive: true }))).code).toBe('NOT_FOUND');
    } finally {
      await run('rabbitmqctl', ['delete_vhost', vhost]);
    }
  });

  it('rejects wrong credentials with ACCESS_REFUSED, not recoverable, without the password', async () => {
    const err = await rejection(connect('amqp://guest:Wr0ngPassw0rd@127.0.0.1:5672//'));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe('ACCESS_REFUSED');
    expect(err.recoverable).toBe(false);
    expect(err.message).not.toContain('Wr0ngPassw0rd');
    expect(err.message).toContain('****');
  });

  it('rejects an unknown vhost with NOT_ALLOWED, not recoverable', async () => {
    const err = await rejection(connect(`amqp://guest:guest@127.0.0.1:5672/${uniq('no-such-vhost')}`));
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
    const err = await rejection(connect(BROKER, { signal: AbortSignal.abort() }));
    expect(err.code).toBe('ABORTED');
  });

  it('walks a failover list: the dead address fails typed, the next one connects', async () => {
    const port = await deadPort();
    const addresses = parseBrokerUrl(`amqp://guest:guest@127.0.0.1:${port}//;${BROKER}`);
    expect(addresses.map((a) => a.port)).toEqual([port, 5672]);
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
    const name = uniq('cab-hb');
    await connect('amqp://guest:guest@127.0.0.1:5672//?heartbeat=7', {
      clientProperties: { connection_name: name },
    });
    const { stdout } = await run('rabbitmqctl', ['list_connections', '-q', 'client_properties', 'timeout']);
    const line = stdout.split('\n').find((l) => l.includes(name));
    expect(line?.trim().endsWith('7')).toBe(true);
  });
});
