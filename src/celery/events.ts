/**
 * Celery's monitoring events (what `celery events`, Flower and `celery.events.state.State`
 * read): JSON dicts published to the topic exchange `celeryev` with the event type, `-`
 * replaced by `.`, as routing key (`task-succeeded` -> `task.succeeded`), delivery_mode 1
 * and a `hostname` header. Every event carries `type`, `timestamp` (epoch seconds),
 * `hostname`, `utcoffset` (hours, Python's sign: positive west of UTC), `pid` and `clock`
 * (the sender's Lamport clock, moved forward for each event).
 *
 * Like Celery's prefork worker, a dispatcher may buffer one group (`task`): those events go
 * out together as a JSON list on the routing key `task.multi` at the next turn of the event
 * loop (or once 24 are waiting), which Celery's EventReceiver unpacks as single events.
 *
 * @module
 */
import { hostname as osHostname } from 'node:os';
import type { Channel } from '../kombu/channel.js';
import type { Connection } from '../kombu/connection.js';
import { Exchange } from '../kombu/exchange.js';
import { Producer } from '../kombu/producer.js';
import { LamportClock } from './clock.js';

/** Celery's `event_exchange` default. */
export const EVENT_EXCHANGE = 'celeryev';

/** Celery's `buffer_limit`: a buffered group is flushed once this many events wait. */
const BUFFER_LIMIT = 24;

/** An event as published: the fields every event has, and the type's own. */
export interface CeleryEvent {
  /** Event type, e.g. `task-succeeded`, `worker-heartbeat`. */
  type: string;
  /** Seconds since the epoch (float). */
  timestamp: number;
  /** The sender's node name. */
  hostname: string;
  /** Offset from UTC in hours, positive west of Greenwich (Python's `time.timezone // 3600`). */
  utcoffset: number;
  /** The sender's process id. */
  pid: number;
  /** The sender's Lamport clock for this event. */
  clock: number;
  /** Type-specific fields (`uuid`, `result`, `freq`, ...). */
  [field: string]: unknown;
}

/**
 * Options of {@link EventDispatcher}.
 *
 * @example
 * ```ts
 * new EventDispatcher(app.connection, { hostname: 'node1@host', groups: ['worker'] });
 * ```
 */
export interface EventDispatcherOptions {
  /** Node name sent in every event and as the `hostname` header. @default `gen<pid>@<hostname>` */
  hostname?: string | undefined;
  /** Exchange name (Celery's `event_exchange`). @default 'celeryev' */
  exchange?: string | undefined;
  /** Serializer (Celery's `event_serializer`). @default 'json' */
  serializer?: string | undefined;
  /** Clock shared with the rest of the node (pidbox replies tick it too). @default a new one */
  clock?: LamportClock | undefined;
  /**
   * Groups sent (the part of the type before the first `-`: `task`, `worker`); `null` sends
   * every group, as Celery's dispatcher with no groups. @default null
   */
  groups?: Iterable<string> | null | undefined;
  /** Groups buffered and sent as lists on `<group>.multi`. @default [] */
  bufferGroups?: Iterable<string> | undefined;
  /**
   * Longest wait of a buffered event before its group is sent, in ms; 0 sends at the end
   * of the event loop's turn, as Celery's worker flushes on its next loop iteration. A
   * longer wait sends many turns' events in one message. @default 0
   */
  flushDelay?: number | undefined;
  /** A buffered group is sent once this many events wait. @default 24 (Celery's buffer_limit) */
  bufferLimit?: number | undefined;
  /**
   * Called with a publish failure (events are fire-and-forget: nothing is retried), at most
   * once every 10 s; {@link EventDispatcher.failed} counts them all. @default undefined
   */
  onError?: ((error: Error) => void) | undefined;
}

/** Python's `utcoffset()`: hours west of UTC, floored as Python's `//` does. */
function utcOffsetHours(): number {
  return Math.floor(new Date().getTimezoneOffset() / 60);
}

/**
 * Sends Celery events on its own channel (no publisher confirms, as Celery's dispatcher).
 *
 * @example
 * ```ts
 * const events = new EventDispatcher(app.connection, { hostname: 'node1@host' });
 * events.send('worker-online', { freq: 2, sw_ident: 'celery-amqp-backend' });
 * await events.close();
 * ```
 */
export class EventDispatcher {
  /** The node name events are sent as. */
  readonly hostname: string;
  /** The Lamport clock forwarded for every event. */
  readonly clock: LamportClock;
  /** Groups sent; `null` means all. */
  groups: Set<string> | null;
  /** Events that could not be published. */
  failed = 0;

  readonly #connection: Connection;
  readonly #exchange: Exchange;
  readonly #serializer: string;
  readonly #headers: { hostname: string };
  readonly #bufferGroups: ReadonlySet<string>;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #buffers = new Map<string, CeleryEvent[]>();
  #flushScheduled = false;
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #flushDelay: number;
  readonly #bufferLimit: number;
  #producer: Producer | undefined;
  #opening: Promise<Producer> | undefined;
  #closed = false;
  #utcoffset = utcOffsetHours();
  readonly #flush = (): void => this.flush();
  #lastReport = -Infinity;
  readonly #failed = (err: unknown): void => {
    this.failed++;
    // While the broker is away every event fails: one report per 10 s says it, not thousands.
    const now = performance.now();
    if (this.#closed || now - this.#lastReport < 10_000) return;
    this.#lastReport = now;
    this.#onError?.(err instanceof Error ? err : new Error(String(err)));
  };

  constructor(connection: Connection, options: EventDispatcherOptions = {}) {
    this.#connection = connection;
    this.hostname = options.hostname ?? `gen${process.pid}@${osHostname()}`;
    this.clock = options.clock ?? new LamportClock();
    this.groups = options.groups === null || options.groups === undefined ? null : new Set(options.groups);
    this.#serializer = options.serializer ?? 'json';
    // kombu's `Exchange('celeryev', type='topic')`: durable, not auto-delete. A different
    // declaration would be refused (406) by a broker where Celery declared it first.
    this.#exchange = new Exchange(options.exchange ?? EVENT_EXCHANGE, {
      type: 'topic',
      durable: true,
      deliveryMode: 1,
    });
    this.#headers = { hostname: this.hostname };
    this.#bufferGroups = new Set(options.bufferGroups ?? []);
    this.#flushDelay = Math.max(0, options.flushDelay ?? 0);
    this.#bufferLimit = Math.max(1, options.bufferLimit ?? BUFFER_LIMIT);
    this.#onError = options.onError;
  }

  /** True when events of `type`'s group are sent. */
  sends(type: string): boolean {
    return this.groups === null || this.groups.has(groupOf(type));
  }

  /**
   * Sends an event now (or buffers it, for a buffered group). Never throws and never waits:
   * a publish failure is counted in {@link failed} and handed to `onError`.
   *
   * @returns the event, or undefined when its group is not sent.
   * @example
   * ```ts
   * events.send('task-succeeded', { uuid: id, result: '5', runtime: 0.002 });
   * ```
   */
  send(type: string, fields: Record<string, unknown> = {}): CeleryEvent | undefined {
    if (this.#closed) return undefined;
    const group = groupOf(type);
    if (this.groups !== null && !this.groups.has(group)) return undefined;
    const event = this.#event(type, fields);
    if (this.#bufferGroups.has(group)) {
      let buffer = this.#buffers.get(group);
      if (buffer === undefined) this.#buffers.set(group, (buffer = []));
      buffer.push(event);
      if (buffer.length >= this.#bufferLimit) this.flush();
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        if (this.#flushDelay === 0) setImmediate(this.#flush);
        else this.#flushTimer = setTimeout(this.#flush, this.#flushDelay).unref();
      }
    } else {
      this.#publish(event, type.replace(/-/g, '.'));
    }
    return event;
  }

  /**
   * Publishes an event of a group even when that group is not enabled (Celery's
   * `publish`, used for `task-sent` on the client).
   */
  publish(type: string, fields: Record<string, unknown>): CeleryEvent | undefined {
    if (this.#closed) return undefined;
    const event = this.#event(type, fields);
    this.#publish(event, type.replace(/-/g, '.'));
    return event;
  }

  /** Sends every buffered event now. */
  flush(): void {
    this.#flushScheduled = false;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    for (const [group, events] of this.#buffers) {
      if (events.length === 0) continue;
      this.#buffers.set(group, []);
      this.#publish(events, `${group}.multi`);
    }
  }

  #event(type: string, fields: Record<string, unknown>): CeleryEvent {
    // The offset only changes with DST: refreshed with every heartbeat, not per event.
    if (type === 'worker-heartbeat') this.#utcoffset = utcOffsetHours();
    // Object.assign, not a spread followed by these fields: V8 takes a slow path for that
    // shape (microseconds per event), and a worker sends three events per task.
    return Object.assign({}, fields, {
      hostname: this.hostname,
      utcoffset: this.#utcoffset,
      pid: process.pid,
      clock: this.clock.forward(),
      timestamp: Date.now() / 1000,
      type,
    });
  }

  #publish(body: CeleryEvent | CeleryEvent[], routingKey: string): void {
    const producer = this.#producer;
    if (producer !== undefined) {
      this.#send(producer, body, routingKey).catch(this.#failed);
      return;
    }
    this.#open()
      .then((p) => this.#send(p, body, routingKey))
      .catch(this.#failed);
  }

  #send(producer: Producer, body: unknown, routingKey: string): Promise<void> {
    return producer.publish(body, {
      routingKey,
      serializer: this.#serializer,
      headers: this.#headers,
      deliveryMode: 1,
      declare: [this.#exchange],
    });
  }

  #open(): Promise<Producer> {
    this.#opening ??= this.#connection.channel().then((ch: Channel) => {
      const producer = new Producer(ch, { exchange: this.#exchange, autoDeclare: false });
      this.#producer = producer;
      return producer;
    });
    const opening = this.#opening;
    // A failed open is retried with the next event.
    opening.catch(() => {
      if (this.#opening === opening) this.#opening = undefined;
    });
    return opening;
  }

  /**
   * Flushes buffered events, waits for the channel to take them and closes it.
   *
   * @example
   * ```ts
   * await events.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    const producer = await this.#opening?.catch(() => undefined);
    if (producer === undefined) return;
    producer.close();
    await producer.channel.close().catch(() => undefined);
  }
}

/** The group of an event type: what comes before the first `-` (`task-sent` -> `task`). */
export function groupOf(type: string): string {
  const dash = type.indexOf('-');
  return dash < 0 ? type : type.slice(0, dash);
}

/**
 * The fields of Celery's `task-sent` event for a published task message (protocol v2
 * headers), as `app.amqp.send_task_message` sends it when `task_send_sent_event` is set.
 *
 * @example
 * ```ts
 * dispatcher.publish('task-sent', taskSentFields(message.headers, 'celery', '', 'celery'));
 * ```
 */
export function taskSentFields(
  headers: Readonly<Record<string, unknown>>,
  queue: string,
  exchange: string,
  routingKey: string,
): Record<string, unknown> {
  return {
    uuid: headers['id'],
    root_id: headers['root_id'] ?? null,
    parent_id: headers['parent_id'] ?? null,
    name: headers['task'],
    args: headers['argsrepr'],
    kwargs: headers['kwargsrepr'],
    retries: headers['retries'] ?? 0,
    eta: headers['eta'] ?? null,
    expires: headers['expires'] ?? null,
    queue,
    exchange,
    routing_key: routingKey,
  };
}
