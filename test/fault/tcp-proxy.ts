/**
 * A TCP proxy for fault tests: sits between a client and the broker and can black-hole,
 * resume or cut every connection on demand.
 */
import net from 'node:net';

/** Options of {@link TcpProxy}. */
export interface TcpProxyOptions {
  /** Upstream host (default 127.0.0.1). */
  targetHost?: string;
  /** Upstream port (default 5672). */
  targetPort?: number;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

/**
 * TCP proxy between clients and an upstream (RabbitMQ at 127.0.0.1:5672 by default).
 *
 * - {@link TcpProxy.pause} stops forwarding in both directions without closing anything:
 *   bytes are held (sockets are paused, so TCP back-pressure builds), which simulates a
 *   network black hole where heartbeats go missing.
 * - {@link TcpProxy.resume} forwards again, held bytes included.
 * - {@link TcpProxy.cut} destroys every connection at once (the listener stays up).
 * - {@link TcpProxy.close} cuts and stops listening; no timers or sockets remain.
 */
export class TcpProxy {
  private readonly targetHost: string;
  private readonly targetPort: number;
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private paused = false;

  /** Creates a proxy; nothing listens until {@link TcpProxy.start}. */
  constructor(options: TcpProxyOptions = {}) {
    this.targetHost = options.targetHost ?? '127.0.0.1';
    this.targetPort = options.targetPort ?? 5672;
  }

  /** Number of live client connections. */
  get connections(): number {
    return this.pairs.size;
  }

  /**
   * Bytes the proxy has read and not forwarded (held while paused, both directions): what
   * shows that a pause holds data, rather than a wait that sees nothing arrive.
   */
  get held(): number {
    let bytes = 0;
    for (const { client, upstream } of this.pairs) bytes += client.readableLength + upstream.readableLength;
    return bytes;
  }

  /** How many connections hold bytes (see {@link TcpProxy.held}). */
  get holding(): number {
    let n = 0;
    for (const { client, upstream } of this.pairs)
      if (client.readableLength + upstream.readableLength > 0) n += 1;
    return n;
  }

  /** Whether forwarding is paused. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** The listening port (throws before {@link TcpProxy.start}). */
  get port(): number {
    const addr = this.server?.address();
    if (addr === null || addr === undefined || typeof addr === 'string') {
      throw new Error('TcpProxy is not listening');
    }
    return addr.port;
  }

  /** Listens on an ephemeral port on 127.0.0.1 and resolves with it. */
  async start(): Promise<number> {
    if (this.server) return this.port;
    const server = net.createServer({ noDelay: true }, (client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  /** Stops forwarding in both directions; connections stay open and bytes are held. */
  pause(): void {
    this.paused = true;
    for (const { client, upstream } of this.pairs) {
      client.pause();
      upstream.pause();
    }
  }

  /** Forwards again, including the bytes held while paused. */
  resume(): void {
    this.paused = false;
    for (const { client, upstream } of this.pairs) {
      client.resume();
      upstream.resume();
    }
  }

  /** Destroys every current connection at once (both sides); new ones are still accepted. */
  cut(): void {
    for (const pair of [...this.pairs]) {
      this.drop(pair);
    }
  }

  /** Cuts every connection and stops listening. */
  async close(): Promise<void> {
    this.paused = false;
    const server = this.server;
    this.server = undefined;
    this.cut();
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private accept(client: net.Socket): void {
    client.setNoDelay(true);
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort, noDelay: true });
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    if (this.paused) {
      client.pause();
      upstream.pause();
    }
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => {
            if (!this.paused) from.resume();
          });
        }
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    const onGone = (): void => this.drop(pair);
    client.on('error', onGone);
    upstream.on('error', onGone);
    client.on('close', onGone);
    upstream.on('close', onGone);
    // A half-close from one side is passed on, then both are torn down when closed.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream.destroy();
  }
}
