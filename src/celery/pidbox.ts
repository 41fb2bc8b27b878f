/**
 * The remote-control mailbox ("pidbox") as kombu 5.2 and Celery 5.2 lay it out on the wire,
 * shared by the worker's side (a node answering commands) and the client's side
 * (`app.control`):
 *
 * - commands go to the fanout exchange `celery.pidbox` (not durable, transient messages);
 *   each worker consumes its own queue `<hostname>.celery.pidbox` bound to it (not durable,
 *   auto-delete, `x-message-ttl` 300 000 and `x-expires` 10 000 ms from
 *   `control_queue_ttl` / `control_queue_expires`, exclusive when `control_queue_exclusive`);
 * - a command body is `{method, arguments, destination, pattern, matcher}`, plus
 *   `ticket` and `reply_to: {exchange, routing_key}` when a reply is wanted; headers
 *   `{clock, expires}` (`expires` in epoch seconds, 0 for none);
 * - replies `{<hostname>: <reply>}` go to the direct exchange `reply.celery.pidbox` with the
 *   client's oid as routing key and headers `{ticket, clock}`; the client reads them from
 *   `<oid>.reply.celery.pidbox` (same flags and arguments as a node's queue).
 *
 * @module
 */
import { Exchange } from '../kombu/exchange.js';
import { Queue } from '../kombu/queue.js';

/**
 * Mailbox settings, with Celery's names and units (seconds).
 *
 * @example
 * ```ts
 * const s: PidboxSettings = { ...DEFAULT_PIDBOX_SETTINGS, control_queue_exclusive: true };
 * ```
 */
export interface PidboxSettings {
  /** Namespace of the exchange names (`<name>.pidbox`). @default 'celery' */
  control_exchange: string;
  /** Message TTL of the mailbox queues, seconds (null: none). @default 300 */
  control_queue_ttl: number | null;
  /** Idle expiry of the mailbox queues, seconds (null: none). @default 10 */
  control_queue_expires: number | null;
  /** Exclusive mailbox queues (RabbitMQ 4.x refuses transient non-exclusive queues). @default false */
  control_queue_exclusive: boolean;
  /** Durable (and then not auto-delete) mailbox queues. @default false */
  control_queue_durable: boolean;
}

/** Celery 5.2's defaults (5.6's for the exclusive/durable flags, which 5.2 lacks). */
export const DEFAULT_PIDBOX_SETTINGS: Readonly<PidboxSettings> = Object.freeze({
  control_exchange: 'celery',
  control_queue_ttl: 300,
  control_queue_expires: 10,
  control_queue_exclusive: false,
  control_queue_durable: false,
});

/**
 * Where a reply goes: the body's `reply_to`.
 *
 * @example
 * ```ts
 * const to: PidboxReplyTo = { exchange: 'reply.celery.pidbox', routing_key: oid };
 * ```
 */
export interface PidboxReplyTo {
  /** The reply exchange. */
  exchange: string;
  /** The client's oid. */
  routing_key: string;
}

/**
 * A command message body, as kombu's `Mailbox._publish` builds it.
 *
 * @example
 * ```ts
 * const cmd: PidboxCommand = { method: 'ping', arguments: {}, destination: null, pattern: null, matcher: null };
 * ```
 */
export interface PidboxCommand {
  /** Command name (`ping`, `revoke`, `active`, ...). */
  method: string;
  /** Keyword arguments of the command. */
  arguments: Record<string, unknown>;
  /** Node names that should act, or null for all. */
  destination: string[] | null;
  /** A node-name pattern (with `matcher`), or null. */
  pattern: string | null;
  /** `glob` or `pcre`, or null. */
  matcher: string | null;
  /** Identifies the replies to this command. */
  ticket?: string;
  /** Where to reply; absent for a cast. */
  reply_to?: PidboxReplyTo;
}

/** The fanout exchange commands are published to (`<namespace>.pidbox`). */
export function pidboxExchange(settings: Pick<PidboxSettings, 'control_exchange'>): Exchange {
  return new Exchange(`${settings.control_exchange}.pidbox`, {
    type: 'fanout',
    durable: false,
    deliveryMode: 1,
  });
}

/** The direct exchange replies are published to (`reply.<namespace>.pidbox`). */
export function replyExchange(settings: Pick<PidboxSettings, 'control_exchange'>): Exchange {
  return new Exchange(`reply.${settings.control_exchange}.pidbox`, {
    type: 'direct',
    durable: false,
    deliveryMode: 1,
  });
}

/** Queue flags and arguments shared by a node's queue and a client's reply queue. */
function mailboxQueue(name: string, exchange: Exchange, routingKey: string, s: PidboxSettings): Queue {
  return new Queue(name, {
    exchange,
    routingKey,
    durable: s.control_queue_durable,
    exclusive: s.control_queue_exclusive,
    autoDelete: !s.control_queue_durable,
    ...(s.control_queue_expires === null ? {} : { expires: Math.trunc(s.control_queue_expires * 1000) }),
    ...(s.control_queue_ttl === null ? {} : { messageTtl: Math.trunc(s.control_queue_ttl * 1000) }),
  });
}

/**
 * A worker's own mailbox queue, `<hostname>.<namespace>.pidbox`, bound to the fanout exchange.
 *
 * @example
 * ```ts
 * nodeQueue('node1@host', DEFAULT_PIDBOX_SETTINGS).name; // 'node1@host.celery.pidbox'
 * ```
 */
export function nodeQueue(hostname: string, settings: PidboxSettings): Queue {
  return mailboxQueue(
    `${hostname}.${settings.control_exchange}.pidbox`,
    pidboxExchange(settings),
    '',
    settings,
  );
}

/**
 * A client's reply queue, `<oid>.reply.<namespace>.pidbox`, bound with its oid.
 *
 * @example
 * ```ts
 * replyQueue(oid, DEFAULT_PIDBOX_SETTINGS).routingKey === oid; // true
 * ```
 */
export function replyQueue(oid: string, settings: PidboxSettings): Queue {
  const exchange = replyExchange(settings);
  return mailboxQueue(`${oid}.${exchange.name}`, exchange, oid, settings);
}

/**
 * Does a node act on a command? As kombu's `Node.handle_message`: a non-empty
 * `destination` must name it; else a `pattern` with a `matcher` (`glob` or `pcre`) must
 * match it; else every node acts.
 *
 * @example
 * ```ts
 * isForNode({ destination: ['a@h'] }, 'a@h'); // true
 * isForNode({ pattern: 'a@*', matcher: 'glob' }, 'b@h'); // false
 * ```
 */
export function isForNode(
  command: { destination?: unknown; pattern?: unknown; matcher?: unknown },
  hostname: string,
): boolean {
  const { destination, pattern, matcher } = command;
  if (Array.isArray(destination) && destination.length > 0) return destination.includes(hostname);
  if (typeof destination === 'string' && destination !== '') return destination === hostname;
  if (typeof pattern === 'string' && pattern !== '' && typeof matcher === 'string' && matcher !== '') {
    return matchNode(hostname, pattern, matcher);
  }
  return true;
}

/** kombu's `match`: `glob` as fnmatch, `pcre` as a regular expression searched from the start. */
export function matchNode(hostname: string, pattern: string, matcher: string): boolean {
  try {
    if (matcher === 'glob') return globToRegExp(pattern).test(hostname);
    // Python's re.match anchors at the start only.
    if (matcher === 'pcre') return new RegExp(`^(?:${pattern})`).test(hostname);
  } catch {
    // A bad pattern matches nothing, as an unknown matcher does.
  }
  return false;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
