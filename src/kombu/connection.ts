/**
 * The kombu Connection: failover, automatic reconnection with backoff, and declarative
 * recovery of every channel opened through it.
 *
 * @module
 */
import { EventEmitter } from 'node:events';
import { CallbackError, CeleryAmqpError, ConnectionError, redact } from '../errors.js';
import type { QueueLostError } from '../errors.js';
import { consoleLogger, reportError } from '../logger.js';
import type { Logger } from '../logger.js';
import type {
  BrokerAddress,
  ConnectOptions,
  TlsOptions,
  Transport,
  TransportConnection,
} from '../transport/types.js';
import { FailoverCycle, formatBrokerUrl, resolveBroker, resolveBrokerUrl } from '../transport/url.js';
import type { FailoverStrategy } from '../transport/url.js';
import { Channel } from './channel.js';
import { abortError, isRecoverable, retryIntervals, retryOverTime, sleep, withDeadline } from './retry.js';
import type { RetryPolicy, WaitOptions } from './retry.js';

/**
 * Events of a {@link Connection}.
 *
 * @example
 * ```ts
 * conn.on('disconnect', (err) => log.warn(err.message));
 * conn.on('error', (err) => log.error(err)); // without a listener: the `logger` option
 * ```
 */
export interface ConnectionEvents {
  /**
   * Connected (first time or after a reconnect), before channels are recovered, with the
   * URL of the node now in use (password redacted, as {@link Connection.connectedTo}).
   */
  connect: [url: string];
  /** The transport connection was lost; reconnection starts (unless disabled). */
  disconnect: [error: Error];
  /** Every channel was recovered after a reconnect. */
  revive: [];
  /**
   * An error no caller can receive, always a typed CeleryAmqpError: a consumer callback
   * (or a channel listener) that threw (`CallbackError`, the original as `cause`), a message
   * a Consumer could not decode and nobody handled, a declaration refused while it was
   * replayed, a consumer dropped because it could not be restarted after a reconnect
   * (`ChannelError`), a reconnect that gave up. Without an 'error' listener each goes to the
   * connection's `logger`, once; a pending {@link Connection.drainEvents} rejects with it too.
   */
  error: [error: CeleryAmqpError];
  /**
   * A queue consumed through this connection was lost with whatever it held: the broker
   * cancelled its consumer (the queue was deleted, or its node went down), or it was gone
   * when the channel recovered after a reconnect (auto-deleted with its consumer, or deleted
   * with its node). The channel has declared it again (empty) and consumes from it again.
   */
  queueLost: [queue: string, error: QueueLostError];
  /** The broker blocked publishing (resource alarm). */
  blocked: [reason: string];
  unblocked: [];
}

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  /**
   * Broker URL, or a failover list (kombu's `;`-separated string, or an array of URLs), with
   * any scheme a transport is registered for.
   * @default `CELERY_BROKER_URL`, else 'amqp://guest:guest@localhost:5672//' (Celery's rule)
   */
  url?: string | readonly string[];
  /**
   * How the failover list is walked (kombu's `failover_strategy`, Celery's
   * `broker_failover_strategy`): `'round-robin'` or `'shuffle'`. Either way a failed or lost
   * node is followed at once by the next one, and `retryPolicy`'s backoff is slept only
   * after a whole pass over the list failed.
   * @default 'round-robin'
   */
  failoverStrategy?: FailoverStrategy;
  /** Heartbeat in milliseconds, passed to the transport; 0 disables. @default the transport's */
  heartbeat?: number;
  /** TLS options for amqps://. @default undefined */
  tls?: TlsOptions;
  /** TCP connect timeout in milliseconds. @default the transport's */
  connectTimeout?: number;
  /** Client properties sent to the broker. @default {} */
  clientProperties?: Record<string, unknown>;
  /** Sent as the `connection_name` client property (shown by `rabbitmqctl`). @default undefined */
  connectionName?: string;
  /** Reconnect with backoff after the connection is lost. @default true */
  autoReconnect?: boolean;
  /** Backoff for reconnecting after a loss. @default kombu's (2000/2000/30000 ms, forever) */
  retryPolicy?: RetryPolicy;
  /** Further options passed to the transport's connect. @default {} */
  transportOptions?: Partial<ConnectOptions>;
  /** Most declarations each channel remembers for recovery. @default 10000 */
  recoveryLimit?: number;
  /**
   * Where errors go that no caller can receive when nobody listens to 'error' (see
   * {@link ConnectionEvents.error}); `silentLogger` drops them. @default consoleLogger
   */
  logger?: Logger;
}

type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'closed';

interface DrainWaiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * A connection to a broker (kombu's `Connection`).
 *
 * Connecting is lazy: the first operation connects. When the transport connection is lost
 * the Connection reconnects by itself (round robin over the failover list, backoff per
 * `retryPolicy`), clears {@link declaredEntities}, and recovers every channel: a fresh
 * transport channel, qos re-applied, entities redeclared, consumers re-consumed. Operations
 * issued meanwhile wait for it within their own timeout/signal.
 *
 * @example
 * ```ts
 * const conn = new Connection('amqp://guest:guest@127.0.0.1:5672//', { heartbeat: 10_000 });
 * await conn.connect();
 * const producer = new Producer(conn, { exchange: new Exchange('celeryresults') });
 * await producer.publish({ hello: 'world' }, { routingKey: 'k' });
 * await conn.close();
 * ```
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  /** Identities of entities declared through `maybeDeclare` on this connection; cleared on reconnect. */
  readonly declaredEntities = new Set<string>();
  /** The options in effect. */
  readonly options: Readonly<ConnectionOptions>;

  readonly #brokers: Array<{ transport: Transport; address: BrokerAddress }>;
  readonly #cycle: FailoverCycle;
  #state: State = 'idle';
  #tconn: TransportConnection | null = null;
  #generation = 0;
  #connecting: Promise<TransportConnection> | null = null;
  #lastError: Error | undefined;
  #abort = new AbortController();
  #default: Channel | undefined;
  readonly #channels = new Set<Channel>();
  #drainWaiters: DrainWaiter[] = [];
  #recovering: Promise<void> | undefined;

  /**
   * @param urlOrOptions - A broker URL or failover list (string or array), or options.
   *   @default `CELERY_BROKER_URL`, else 'amqp://guest:guest@localhost:5672//'; `memory://` only when named
   * @param options - Options when the first argument is a URL.
   * @throws ArgumentError (INVALID_URL) for a malformed URL or a scheme no transport is
   *   registered for; (INVALID_ARGUMENT) for an unknown failover strategy.
   */
  constructor(
    urlOrOptions?: string | readonly string[] | ConnectionOptions,
    options: ConnectionOptions = {},
  ) {
    super();
    const opts: ConnectionOptions = isUrl(urlOrOptions)
      ? { ...options, url: urlOrOptions }
      : { ...(urlOrOptions ?? {}) };
    // Celery's rule picks the broker when none is named; a list is used as given.
    opts.url = typeof opts.url === 'string' || opts.url === undefined ? resolveBrokerUrl(opts.url) : opts.url;
    this.options = opts;
    this.#brokers = resolveBroker(opts.url);
    this.#cycle = new FailoverCycle(this.#brokers.length, opts.failoverStrategy);
  }

  /** The URL in use (or about to be), password redacted. */
  get displayUrl(): string {
    if (this.#tconn !== null) return this.#tconn.displayUrl;
    const b = this.#brokers[this.#cycle.current];
    return b === undefined ? redact(String(this.options.url ?? '')) : formatBrokerUrl(b.address);
  }

  /**
   * The node this connection is on now (its URL, password redacted), or undefined while not
   * connected. The 'connect' event passes the same URL after every (re)connect.
   *
   * @example
   * ```ts
   * conn.on('connect', (url) => log.info(`on ${url}`));
   * conn.connectedTo; // 'amqp://guest:****@127.0.0.1:5682//'
   * ```
   */
  get connectedTo(): string | undefined {
    return this.connected ? this.#tconn?.displayUrl : undefined;
  }

  /** True while a transport connection is open. */
  get connected(): boolean {
    return this.#state === 'connected' && this.#tconn !== null && !this.#tconn.closed;
  }

  /** Incremented on every new transport connection (channels compare it to know they must redeclare). */
  get generation(): number {
    return this.#generation;
  }

  /** The name of the transport serving the current address, e.g. `'amqp'` or `'memory'`. */
  get transportName(): string {
    return (this.#brokers[this.#cycle.current] ?? this.#brokers[0])?.transport.name ?? '';
  }

  /**
   * Connects now (operations connect lazily anyway). Tries each failover address once, in
   * order, unless a retry policy is given. Resolves with this connection.
   *
   * @param options - `retryPolicy` for the initial connect, `timeout`, `signal`.
   * @throws ConnectionError when no address could be reached.
   * @example
   * ```ts
   * await conn.connect({ timeout: 5000 });
   * ```
   */
  async connect(options: WaitOptions & { retryPolicy?: RetryPolicy } = {}): Promise<this> {
    if (this.connected) return this;
    const policy = options.retryPolicy ?? {
      maxRetries: this.#brokers.length - 1,
      intervalStart: 0,
      intervalStep: 0,
      intervalMax: 0,
    };
    await withDeadline(this.#startConnect(policy, false), options);
    return this;
  }

  #startConnect(policy: RetryPolicy, isReconnect: boolean): Promise<TransportConnection> {
    if (this.#state === 'closed') return Promise.reject(new ConnectionError('Connection closed by client'));
    if (this.#connecting !== null) return this.#connecting;
    this.#state = isReconnect ? 'reconnecting' : 'connecting';
    const p = this.#connectLoop(policy);
    this.#connecting = p;
    p.then(
      () => {
        this.#connecting = null;
      },
      (err: unknown) => {
        this.#connecting = null;
        if (this.#state === 'closed') return;
        this.#state = 'failed';
        this.#lastError = err instanceof Error ? err : new ConnectionError(String(err));
        this.#failDrainWaiters(this.#lastError);
        if (isReconnect) this.reportError(this.#lastError);
      },
    );
    return p;
  }

  /**
   * kombu's `ensure_connection` over the failover list: a failed address is followed at once
   * by the next (per the failover strategy); the policy's sleep comes only after a whole
   * pass failed. `maxRetries` counts attempts, as kombu's does.
   */
  async #connectLoop(policy: RetryPolicy): Promise<TransportConnection> {
    const signal = this.#abort.signal;
    const intervals = retryIntervals(policy);
    let tconn: TransportConnection;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw abortError(signal);
      const broker = this.#brokers[this.#cycle.current];
      if (broker === undefined) throw new ConnectionError('No broker address');
      try {
        tconn = await broker.transport.connect(broker.address, this.#connectOptions(signal));
        break;
      } catch (err) {
        if (!isRecoverable(err) || (policy.maxRetries !== undefined && attempt >= policy.maxRetries))
          throw err;
        const passDone = this.#cycle.advance();
        await sleep(passDone ? intervals.next().value : 0, { signal });
      }
    }
    this.#cycle.connected();
    if (this.#state === 'closed') {
      await tconn.close().catch(() => undefined);
      throw new ConnectionError('Connection closed by client');
    }
    this.#attach(tconn);
    return tconn;
  }

  #connectOptions(signal: AbortSignal): ConnectOptions {
    const o = this.options;
    const clientProperties = { ...(o.clientProperties ?? {}) };
    if (o.connectionName !== undefined) clientProperties['connection_name'] = o.connectionName;
    return {
      ...(o.transportOptions ?? {}),
      ...(o.heartbeat === undefined ? {} : { heartbeat: o.heartbeat }),
      ...(o.connectTimeout === undefined ? {} : { connectTimeout: o.connectTimeout }),
      ...(o.tls === undefined ? {} : { tls: o.tls }),
      clientProperties,
      signal,
    };
  }

  #attach(tconn: TransportConnection): void {
    this.#tconn = tconn;
    this.#generation += 1;
    this.#state = 'connected';
    this.#lastError = undefined;
    this.declaredEntities.clear();
    tconn.on('close', (err) => this.#onLost(tconn, err));
    tconn.on('blocked', (reason) => this.emit('blocked', reason));
    tconn.on('unblocked', () => this.emit('unblocked'));
    this.emit('connect', tconn.displayUrl);
    if (this.#generation > 1) {
      const recovering = Promise.allSettled([...this.#channels].map((c) => c.resume())).then(() => {
        if (this.#recovering === recovering) this.#recovering = undefined;
        if (this.#state === 'connected') this.emit('revive');
      });
      this.#recovering = recovering;
    }
  }

  #onLost(tconn: TransportConnection, err?: Error): void {
    if (tconn !== this.#tconn) return;
    this.#tconn = null;
    if (this.#state === 'closed') return;
    const error = err ?? new ConnectionError('Connection closed');
    this.declaredEntities.clear();
    this.#state = 'failed';
    this.#lastError = error;
    this.emit('disconnect', error);
    // The node just lost is tried last: the next one may well be up (a cluster member).
    this.#cycle.moveOn();
    if (this.options.autoReconnect === false) {
      this.#failDrainWaiters(new ConnectionError('Connection lost', { cause: error }));
      return;
    }
    this.#startConnect(this.options.retryPolicy ?? {}, true).catch(() => undefined);
  }

  /**
   * @internal Resolves with the open transport connection, connecting lazily. Rejects with a
   * ConnectionError when closed, or when reconnecting is disabled or has given up.
   */
  whenConnected(): Promise<TransportConnection> {
    const tconn = this.#tconn;
    if (tconn !== null && !tconn.closed && this.#state === 'connected') return Promise.resolve(tconn);
    if (tconn !== null && tconn.closed) this.#onLost(tconn, new ConnectionError('Connection lost'));
    switch (this.#state) {
      case 'idle':
        return this.#startConnect(
          { maxRetries: this.#brokers.length - 1, intervalStart: 0, intervalStep: 0 },
          false,
        );
      case 'closed':
        return Promise.reject(new ConnectionError('Connection closed by client'));
      case 'failed':
        return Promise.reject(
          new ConnectionError(
            `Not connected to ${this.displayUrl}`,
            this.#lastError ? { cause: this.#lastError } : {},
          ),
        );
      default:
        return this.#connecting ?? Promise.reject(new ConnectionError('Not connected'));
    }
  }

  /**
   * Opens a new channel (connecting first if needed).
   *
   * @param options - `confirm` for publisher confirms; `recoverDeclarations: false` for a
   *   publish-only channel whose declarations need no replay after a reconnect (the result
   *   store path, which declares before every publish); `timeout`, `signal`.
   * @example
   * ```ts
   * const ch = await conn.channel({ confirm: true, recoverDeclarations: false });
   * ```
   */
  async channel(
    options: { confirm?: boolean; recoverDeclarations?: boolean } & WaitOptions = {},
  ): Promise<Channel> {
    const ch = this.#newChannel(options.confirm ?? false, options.recoverDeclarations ?? true);
    try {
      await ch.whenReady(options);
    } catch (err) {
      await ch.close().catch(() => undefined);
      throw err;
    }
    return ch;
  }

  #newChannel(confirm: boolean, recoverDeclarations = true): Channel {
    if (this.#state === 'closed') throw new ConnectionError('Connection closed by client');
    const ch = new Channel(this, {
      confirm,
      recoverDeclarations,
      ...(this.options.recoveryLimit === undefined ? {} : { recoveryLimit: this.options.recoveryLimit }),
    });
    this.#channels.add(ch);
    return ch;
  }

  /** The shared channel used when an entity, Producer or Consumer is given this connection. Opened lazily. */
  get defaultChannel(): Channel {
    if (this.#default === undefined || this.#default.closed) this.#default = this.#newChannel(false);
    return this.#default;
  }

  /** @internal Called by Channel.close. */
  forgetChannel(channel: Channel): void {
    this.#channels.delete(channel);
  }

  /**
   * Waits until the next delivery for any consumer of this connection has been dispatched.
   *
   * @param options - `timeout` (ms) and `signal`.
   * @throws TimeoutError ("The operation timed out.") at the deadline; AbortError; an
   *   error reported while it waited (see {@link ConnectionEvents.error}), e.g. an
   *   undecodable message a Consumer could not hand to anyone.
   * @example
   * ```ts
   * await conn.drainEvents({ timeout: 1000 });
   * ```
   */
  drainEvents(options: WaitOptions = {}): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new ConnectionError('Connection closed by client'));
    let waiter: DrainWaiter | undefined;
    const p = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject };
      this.#drainWaiters.push(waiter);
    });
    return withDeadline(p, options, () => {
      this.#drainWaiters = this.#drainWaiters.filter((w) => w !== waiter);
    });
  }

  /** @internal Called after a delivery was dispatched to a consumer. */
  dispatched(): void {
    if (this.#drainWaiters.length === 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w.resolve();
  }

  #failDrainWaiters(err: unknown): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  /**
   * Reports an error with no caller to reject (see {@link ConnectionEvents.error}): a
   * pending drainEvents rejects with it, and it is emitted as 'error' when listened to, else
   * written to the `logger` once. Anything but a CeleryAmqpError is a callback's exception
   * and is wrapped in a CallbackError. Never throws.
   *
   * @example
   * ```ts
   * conn.reportError(new ChannelError('replayed declaration refused', { code: 'PRECONDITION_FAILED' }));
   * ```
   */
  reportError(err: unknown): void {
    const error =
      err instanceof CeleryAmqpError
        ? err
        : new CallbackError(`a callback threw: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
    this.#failDrainWaiters(error);
    reportError(this, error, this.options.logger ?? consoleLogger, `Connection ${this.displayUrl}`);
  }

  /** @internal Called by a Channel that found a consumed queue lost: emits 'queueLost'. */
  queueLost(queue: string, error: QueueLostError): void {
    this.emit('queueLost', queue, error);
  }

  /**
   * Makes sure the connection is up and every channel recovered (reconnecting if it had
   * given up).
   *
   * @example
   * ```ts
   * await conn.revive({ timeout: 10_000 });
   * ```
   */
  async revive(options: WaitOptions = {}): Promise<void> {
    if (this.#state === 'failed' || this.#state === 'idle') {
      this.#startConnect(this.options.retryPolicy ?? { maxRetries: 0 }, this.#generation > 0).catch(
        () => undefined,
      );
    }
    await withDeadline(
      this.whenConnected().then(() => this.#recovering),
      options,
    );
  }

  /**
   * Runs `fn`; on a recoverable (connection) error, waits for the reconnect and recovery and
   * tries again per the policy (kombu's `ensure`). Other errors are thrown at once.
   *
   * @param fn - The operation; receives the attempt number.
   * @param options - The retry policy (default: forever at kombu's intervals), `onRetry`, `signal`.
   * @example
   * ```ts
   * await conn.ensure(() => producer.publish(body, { routingKey }), {
   *   maxRetries: 3, intervalStart: 0, intervalStep: 1000, intervalMax: 1000,
   *   onRetry: (err, attempt, ms) => log.warn({ err, attempt, ms }),
   * });
   * ```
   */
  ensure<T>(
    fn: (attempt: number) => Promise<T>,
    options: RetryPolicy & {
      onRetry?: (err: unknown, attempt: number, sleepMs: number) => void;
      signal?: AbortSignal;
    } = {},
  ): Promise<T> {
    const { onRetry, signal, ...policy } = options;
    return retryOverTime(
      async (attempt) => {
        if (attempt > 0) await this.revive(signal === undefined ? {} : { signal });
        return fn(attempt);
      },
      { policy, onRetry, signal, isRecoverable },
    );
  }

  /**
   * Closes the connection and every channel (idempotent). Leaves no timers, sockets or
   * listeners of its own; pending waits reject with ConnectionError.
   *
   * @example
   * ```ts
   * await conn.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#abort.abort(new ConnectionError('Connection closed by client'));
    this.#failDrainWaiters(new ConnectionError('Connection closed by client'));
    await Promise.allSettled([...this.#channels].map((c) => c.close()));
    const tconn = this.#tconn;
    this.#tconn = null;
    if (tconn !== null) {
      tconn.removeAllListeners('blocked');
      tconn.removeAllListeners('unblocked');
      if (!tconn.closed) await tconn.close().catch(() => undefined);
    }
    await this.#connecting?.catch(() => undefined);
  }
}

/** A URL or failover list rather than an options object. */
function isUrl(value: unknown): value is string | readonly string[] {
  return typeof value === 'string' || Array.isArray(value);
}
