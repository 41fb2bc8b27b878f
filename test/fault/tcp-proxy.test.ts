/**
 * Socket-level proof that the fault-test proxy forwards, black-holes, resumes and cuts.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupStack, waitUntil } from '../fixture.js';
import { TcpProxy } from './tcp-proxy.js';

const AMQP_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x00, 0x00, 0x09, 0x01]);

const cleanups = cleanupStack();
afterEach(() => cleanups.run());

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  cleanups.push(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Collects everything a socket receives. */
function collect(socket: net.Socket): { data: () => Buffer; closed: Promise<void> } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { data: () => Buffer.concat(chunks), closed };
}

/** A frame header for connection.start: type 1, channel 0, class 10, method 10. */
function isConnectionStart(buf: Buffer): boolean {
  return (
    buf.length >= 11 &&
    buf[0] === 1 &&
    buf.readUInt16BE(1) === 0 &&
    buf.readUInt16BE(7) === 10 &&
    buf.readUInt16BE(9) === 10
  );
}

async function newProxy(targetPort?: number): Promise<TcpProxy> {
  const proxy = new TcpProxy(targetPort === undefined ? {} : { targetPort });
  cleanups.push(() => proxy.close());
  await proxy.start();
  return proxy;
}

/** A local upstream that records what it receives and lets the test push bytes. */
async function localUpstream(): Promise<{ port: number; received: () => Buffer; send: (b: Buffer) => void }> {
  const sockets: net.Socket[] = [];
  const chunks: Buffer[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    received: () => Buffer.concat(chunks),
    send: (b) => {
      for (const s of sockets) s.write(b);
    },
  };
}

describe('TcpProxy', () => {
  it('listens on an ephemeral 127.0.0.1 port and relays the AMQP handshake from RabbitMQ', async () => {
    const proxy = await newProxy();
    expect(proxy.port).toBeGreaterThan(0);
    const socket = await connect(proxy.port);
    const rx = collect(socket);
    socket.write(AMQP_HEADER);
    await waitUntil(() => rx.data().length >= 11);
    expect(isConnectionStart(rx.data())).toBe(true);
    expect(proxy.connections).toBe(1);
  });

  it('pause holds bytes toward RabbitMQ without closing; resume delivers them', async () => {
    const proxy = await newProxy();
    const socket = await connect(proxy.port);
    const rx = collect(socket);
    await waitUntil(() => proxy.connections === 1);
    proxy.pause();
    expect(proxy.isPaused).toBe(true);
    socket.write(AMQP_HEADER);
    // The header reached the proxy and sits there: had it been forwarded, it would not be held.
    await waitUntil(() => proxy.held === AMQP_HEADER.length, { what: 'the header held by the proxy' });
    expect(rx.data().length).toBe(0);
    expect(socket.destroyed).toBe(false);
    expect(proxy.connections).toBe(1);
    proxy.resume();
    await waitUntil(() => rx.data().length >= 11);
    expect(isConnectionStart(rx.data())).toBe(true);
  });

  it('pause holds bytes in both directions; a connection opened while paused is held too', async () => {
    const upstream = await localUpstream();
    const proxy = await newProxy(upstream.port);
    const a = await connect(proxy.port);
    const rxA = collect(a);
    a.write('hello');
    await waitUntil(() => upstream.received().toString() === 'hello');
    upstream.send(Buffer.from('down-1'));
    await waitUntil(() => rxA.data().toString() === 'down-1');

    proxy.pause();
    a.write('held-up');
    upstream.send(Buffer.from('held-down'));
    const b = await connect(proxy.port);
    b.write('from-b');
    const held = 'held-up'.length + 'held-down'.length + 'from-b'.length;
    await waitUntil(() => proxy.held === held, { what: 'every byte written while paused held by the proxy' });
    expect(upstream.received().toString()).toBe('hello');
    expect(rxA.data().toString()).toBe('down-1');
    expect(proxy.connections).toBe(2);

    proxy.resume();
    await waitUntil(() => upstream.received().length === 'hello'.length + 'held-up'.length + 'from-b'.length);
    expect(upstream.received().toString()).toContain('held-up');
    expect(upstream.received().toString()).toContain('from-b');
    await waitUntil(() => rxA.data().toString() === 'down-1held-down');
  });

  it('cut destroys every connection at once and keeps accepting new ones', async () => {
    const proxy = await newProxy();
    const a = await connect(proxy.port);
    const b = await connect(proxy.port);
    const rxA = collect(a);
    const rxB = collect(b);
    await waitUntil(() => proxy.connections === 2);
    proxy.cut();
    await Promise.all([rxA.closed, rxB.closed]);
    expect(proxy.connections).toBe(0);

    const c = await connect(proxy.port);
    const rxC = collect(c);
    c.write(AMQP_HEADER);
    await waitUntil(() => rxC.data().length >= 11);
    expect(isConnectionStart(rxC.data())).toBe(true);
  });

  it('a peer closing its side closes the other side and is no longer counted', async () => {
    const upstream = await localUpstream();
    const proxy = await newProxy(upstream.port);
    const a = await connect(proxy.port);
    await waitUntil(() => proxy.connections === 1);
    a.end();
    await waitUntil(() => proxy.connections === 0);
  });

  it('close stops listening and drops connections, even while paused', async () => {
    const proxy = new TcpProxy();
    const port = await proxy.start();
    const a = await connect(port);
    const rxA = collect(a);
    proxy.pause();
    await proxy.close();
    await rxA.closed;
    expect(proxy.connections).toBe(0);
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
