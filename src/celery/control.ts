/**
 * The client side of remote control (Celery's `app.control`, `celery.app.control`): sends
 * commands to every worker of the fleet through the pidbox fanout exchange, Python and Node
 * workers alike, and collects their replies by ticket. Wire layout in `pidbox.ts`.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { ArgumentError } from '../errors.js';
import type { Channel } from '../kombu/channel.js';
import { Consumer } from '../kombu/consumer.js';
import type { Message } from '../kombu/message.js';
import { Producer } from '../kombu/producer.js';
import type { Celery } from './app.js';
import { LamportClock } from './clock.js';
import { DEFAULT_PIDBOX_SETTINGS, pidboxExchange, replyQueue } from './pidbox.js';
import type { PidboxCommand, PidboxSettings } from './pidbox.js';
import { Inspect } from './inspect.js';

/** One worker's reply: `{<hostname>: <reply>}`. */
export type NodeReply<T = unknown> = Record<string, T>;

/**
 * Options of {@link Control.broadcast} (and, in part, of every command).
 *
 * @example
 * ```ts
 * await app.control.broadcast('ping', { reply: true, timeout: 500, destination: ['node1@host'] });
 * ```
 */
export interface BroadcastOptions {
  /** Keyword arguments of the command. @default {} */
  arguments?: Record<string, unknown> | undefined;
  /** Node names that should act; null or empty for every node. @default null */
  destination?: readonly string[] | null | undefined;
  /** A node-name pattern, with `matcher`. @default undefined */
  pattern?: string | undefined;
  /** How `pattern` matches: `glob` or `pcre`. @default undefined */
  matcher?: 'glob' | 'pcre' | undefined;
  /** Wait for replies. @default false */
  reply?: boolean | undefined;
  /** How long to wait for replies, in ms. @default 1000 */
  timeout?: number | undefined;
  /** Stop once this many replies came. @default the number of destinations, else no limit */
  limit?: number | undefined;
  /** Called with each reply as it comes. @default undefined */
  callback?: ((reply: NodeReply) => void) | undefined;
  /** Ends the wait early (the replies so far are returned). @default undefined */
  signal?: AbortSignal | undefined;
}

/** Options of the commands that target workers (destination, timeout, reply). */
export type CommandOptions = Omit<BroadcastOptions, 'arguments'>;

/**
 * Options of {@link Control.inspect}.
 *
 * @example
 * ```ts
 * await app.control.inspect({ timeout: 2000, destination: ['node1@host'] }).active();
 * ```
 */
export type InspectOptions = Omit<BroadcastOptions, 'arguments' | 'reply' | 'callback'> & {
  /** Called with each reply as it comes. @default undefined */
  callback?: ((reply: NodeReply) => void) | undefined;
};

/** A reply collection in progress. */
interface Collector {
  readonly replies: NodeReply[];
  readonly limit: number | undefined;
  readonly callback: ((reply: NodeReply) => void) | undefined;
  done(): void;
}

/**
 * Remote control of Celery workers.
 *
 * @example
 * ```ts
 * await app.control.ping({ timeout: 500 });       // [{ 'node1@host': { ok: 'pong' } }]
 * await app.control.revoke(id, { terminate: true });
 * await app.control.inspect().registered();
 * ```
 */
export class Control {
  /** The Lamport clock sent with every command. */
  readonly clock = new LamportClock();
  /** Routing key of this client's replies (kombu's mailbox `oid`). */
  readonly oid = randomUUID();
  readonly settings: Readonly<PidboxSettings>;
  readonly #app: Celery;
  readonly #collectors = new Map<string, Collector>();
  #setup: Promise<{ channel: Channel; producer: Producer }> | undefined;
  #replies: Promise<void> | undefined;
  #closed = false;

  constructor(app: Celery, settings: Partial<PidboxSettings> = {}) {
    this.#app = app;
    this.settings = Object.freeze({ ...DEFAULT_PIDBOX_SETTINGS, ...settings });
  }

  #open(): Promise<{ channel: Channel; producer: Producer }> {
    this.#setup ??= this.#app.connection.channel().then((channel) => ({
      channel,
      producer: new Producer(channel, { autoDeclare: false }),
    }));
    const setup = this.#setup;
    setup.catch(() => {
      if (this.#setup === setup) this.#setup = undefined;
    });
    return setup;
  }

  /** Declares the reply queue and consumes it (once). */
  #listen(channel: Channel): Promise<void> {
    this.#replies ??= new Consumer(channel, {
      queues: [replyQueue(this.oid, this.settings)],
      noAck: true,
      accept: ['json'],
      onMessage: (m) => this.#onReply(m),
      tagPrefix: 'pidbox-reply.',
    })
      .consume()
      .then(() => undefined);
    const replies = this.#replies;
    replies.catch(() => {
      if (this.#replies === replies) this.#replies = undefined;
    });
    return replies;
  }

  #onReply(message: Message): void {
    const headers = message.headers;
    this.clock.adjust(headers['clock']);
    const expires = headers['expires'];
    if (typeof expires === 'number' && expires > 0 && Date.now() / 1000 > expires) return;
    const ticket = headers['ticket'];
    const collector = typeof ticket === 'string' ? this.#collectors.get(ticket) : undefined;
    if (collector === undefined) return;
    let body: unknown;
    try {
      body = message.payload;
    } catch {
      return;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
    const reply: NodeReply = { ...body };
    collector.replies.push(reply);
    collector.callback?.(reply);
    if (collector.limit !== undefined && collector.replies.length >= collector.limit) collector.done();
  }

  /**
   * Sends a command to the workers (Celery's `broadcast`); with `reply`, resolves with the
   * replies received within `timeout` ms, else with `[]` once the command is published.
   *
   * @throws ArgumentError after close, or for a destination that is not a list.
   * @example
   * ```ts
   * const replies = await app.control.broadcast('rate_limit', {
   *   arguments: { task_name: 'tasks.add', rate_limit: '10/m' }, reply: true,
   * });
   * ```
   */
  async broadcast(command: string, options: BroadcastOptions = {}): Promise<NodeReply[]> {
    if (this.#closed) throw new ArgumentError('control closed');
    const destination = options.destination ?? null;
    if (destination !== null && !Array.isArray(destination)) {
      throw new ArgumentError('destination must be a list of node names');
    }
    const timeout = options.timeout ?? 1000;
    const { channel, producer } = await this.#open();
    const body: PidboxCommand = {
      method: command,
      arguments: options.arguments ?? {},
      destination: destination === null || destination.length === 0 ? null : [...destination],
      pattern: options.pattern ?? null,
      matcher: options.matcher ?? null,
    };
    const exchange = pidboxExchange(this.settings);
    const publish = (): Promise<void> =>
      producer.publish(body, {
        exchange: exchange.name,
        routingKey: '',
        serializer: 'json',
        deliveryMode: 1,
        headers: {
          clock: this.clock.forward(),
          expires: options.reply === true ? Date.now() / 1000 + timeout / 1000 : 0,
        },
        declare: [exchange],
      });
    if (options.reply !== true) {
      await publish();
      return [];
    }
    await this.#listen(channel);
    const ticket = randomUUID();
    body.ticket = ticket;
    body.reply_to = { exchange: `reply.${this.settings.control_exchange}.pidbox`, routing_key: this.oid };
    const limit = options.limit ?? (body.destination === null ? undefined : body.destination.length);
    return new Promise<NodeReply[]>((resolve, reject) => {
      const replies: NodeReply[] = [];
      const finish = (): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', finish);
        this.#collectors.delete(ticket);
        resolve(replies);
      };
      const timer = setTimeout(finish, timeout);
      options.signal?.addEventListener('abort', finish, { once: true });
      this.#collectors.set(ticket, { replies, limit, callback: options.callback, done: finish });
      publish().catch((err: unknown) => {
        clearTimeout(timer);
        this.#collectors.delete(ticket);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  /** An {@link Inspect} with these options. */
  inspect(options: InspectOptions = {}): Inspect {
    return new Inspect(this, options);
  }

  /**
   * Pings the workers (replies by default).
   *
   * @example
   * ```ts
   * await app.control.ping(); // [{ 'celery@host': { ok: 'pong' } }, ...]
   * ```
   */
  ping(options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('ping', { reply: true, ...options });
  }

  /**
   * Revokes tasks by id: workers will not run them (stored REVOKED); with `terminate`, a
   * running one is aborted (a Node worker fires its AbortSignal).
   *
   * @example
   * ```ts
   * await app.control.revoke(id, { terminate: true });
   * ```
   */
  revoke(
    taskId: string | readonly string[],
    options: CommandOptions & { terminate?: boolean; signalName?: string } = {},
  ): Promise<NodeReply[]> {
    const { terminate = false, signalName = 'SIGTERM', ...rest } = options;
    return this.broadcast('revoke', {
      ...rest,
      arguments: {
        task_id: typeof taskId === 'string' ? taskId : [...taskId],
        terminate,
        signal: signalName,
      },
    });
  }

  /** Sets a task type's rate limit (`'10/s'`, `'100/m'`, or null to remove it). */
  rateLimit(
    taskName: string,
    rateLimit: string | number | null,
    options: CommandOptions = {},
  ): Promise<NodeReply[]> {
    return this.broadcast('rate_limit', {
      ...options,
      arguments: { task_name: taskName, rate_limit: rateLimit },
    });
  }

  /** Sets a task type's time limits, seconds. */
  timeLimit(
    taskName: string,
    limits: { soft?: number | null; hard?: number | null },
    options: CommandOptions = {},
  ): Promise<NodeReply[]> {
    return this.broadcast('time_limit', {
      ...options,
      arguments: { task_name: taskName, soft: limits.soft ?? null, hard: limits.hard ?? null },
    });
  }

  /** Tells workers to consume a queue too. */
  addConsumer(
    queue: string,
    options: CommandOptions & { exchange?: string; exchangeType?: string; routingKey?: string } = {},
  ): Promise<NodeReply[]> {
    const { exchange = null, exchangeType = 'direct', routingKey = null, ...rest } = options;
    return this.broadcast('add_consumer', {
      ...rest,
      arguments: { queue, exchange, exchange_type: exchangeType, routing_key: routingKey },
    });
  }

  /** Tells workers to stop consuming a queue. */
  cancelConsumer(queue: string, options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('cancel_consumer', { ...options, arguments: { queue } });
  }

  /** Turns task events on. */
  enableEvents(options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('enable_events', options);
  }

  /** Turns task events off. */
  disableEvents(options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('disable_events', options);
  }

  /** Asks for a heartbeat now. */
  heartbeat(options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('heartbeat', options);
  }

  /** Grows the workers' concurrency by `n`. */
  poolGrow(n = 1, options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('pool_grow', { ...options, arguments: { n } });
  }

  /** Shrinks the workers' concurrency by `n`. */
  poolShrink(n = 1, options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('pool_shrink', { ...options, arguments: { n } });
  }

  /** Shuts the workers down (warm); they send no reply. */
  shutdown(options: CommandOptions = {}): Promise<NodeReply[]> {
    return this.broadcast('shutdown', options);
  }

  /**
   * Ends pending collections (with what they have) and closes the channel. Idempotent.
   *
   * @example
   * ```ts
   * await app.control.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [...this.#collectors.values()]) c.done();
    const setup = await this.#setup?.catch(() => undefined);
    if (setup === undefined) return;
    setup.producer.close();
    await setup.channel.close().catch(() => undefined);
  }
}
