/**
 * One virtual host of the embedded broker: its exchanges, queues and bindings, and the
 * declare/bind/delete rules RabbitMQ applies to them, with RabbitMQ's reply codes and texts.
 *
 * @module
 */
import { AMQP_REPLY_CODES, fromReply } from '../../errors.js';
import type { AmqpReplyCode, CeleryAmqpError } from '../../errors.js';
import type {
  ExchangeBindParams,
  ExchangeDeclareParams,
  ExchangeDeleteParams,
  FieldTable,
  QueueBindParams,
  QueueDeclareOk,
  QueueDeclareParams,
  QueueDeleteParams,
  QueueUnbindParams,
} from '../types.js';
import { MemoryExchange, isExchangeType, removeFrom, topicWords } from './exchange-routing.js';
import type { BindingDestinationKind, MemoryBinding } from './exchange-routing.js';
import { deadLetter, fieldText } from './dead-letter.js';
import type { DeadLetterReason } from './dead-letter.js';
import { MemoryQueue } from './memory-queue.js';
import type { QueueHooks, StoredMessage } from './memory-queue.js';

/**
 * A broker error with RabbitMQ's text, e.g. `404 NOT_FOUND - no queue 'q' in vhost '/'`.
 *
 * @example
 * ```ts
 * throw brokerError('NOT_FOUND', "no queue 'q' in vhost '/'");
 * ```
 */
export function brokerError(code: AmqpReplyCode, text: string): CeleryAmqpError {
  return fromReply(AMQP_REPLY_CODES[code], `${code} - ${text}`);
}

/** Queue arguments RabbitMQ compares on redeclare (others are ignored). */
const EQUIVALENT_QUEUE_ARGS = [
  'x-expires',
  'x-message-ttl',
  'x-dead-letter-exchange',
  'x-dead-letter-routing-key',
  'x-max-length',
  'x-max-length-bytes',
  'x-max-priority',
  'x-overflow',
  'x-queue-mode',
  'x-single-active-consumer',
] as const;

function describeArg(value: unknown): string {
  if (value === undefined) return 'none';
  if (typeof value === 'number' || typeof value === 'bigint') {
    const type = Number.isInteger(Number(value)) ? 'signedint' : 'double';
    return `the value '${String(value)}' of type '${type}'`;
  }
  if (typeof value === 'boolean') return `the value '${String(value)}' of type 'bool'`;
  if (Buffer.isBuffer(value)) return `the value '${value.toString()}' of type 'longstr'`;
  return `the value '${String(value)}' of type 'longstr'`;
}

function sameArg(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) {
    return Number(a) === Number(b);
  }
  const text = (v: unknown): unknown => (Buffer.isBuffer(v) ? v.toString() : v);
  return text(a) === text(b);
}

/** Callbacks from a virtual host to its broker. */
export interface VirtualHostHooks {
  schedule(queue: MemoryQueue): void;
}

/**
 * Broker policies of one virtual host that differ between RabbitMQ versions.
 *
 * @example
 * ```ts
 * MemoryBroker.get().configureVhost('/', { denyTransientNonExclusiveQueues: true });
 * ```
 */
export interface VirtualHostSettings {
  /**
   * Refuse to create non-durable, non-exclusive queues as RabbitMQ 4.3 does by default (its
   * deprecated feature `transient_nonexcl_queues`): the connection closes with 541
   * INTERNAL_ERROR and RabbitMQ's text, cut at 255 characters as RabbitMQ cuts it.
   * @default false (RabbitMQ 3.x and 4.0-4.2)
   */
  denyTransientNonExclusiveQueues?: boolean | undefined;
}

/**
 * The reply text RabbitMQ 4.3 closes a connection with when it refuses a transient
 * non-exclusive queue: its deprecated-feature warning (phase denied_by_default), cut to 255
 * characters by its AMQP error formatting (so the configuration line it ends with is lost).
 */
export const TRANSIENT_NONEXCL_DENIED_TEXT =
  'INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.\n' +
  'By default, this feature is not permitted anymore.\n' +
  'The feature will be removed from a future major RabbitMQ version, regardless of the ' +
  'configuration; actual version to be determined.\nTo...';

/** Queue types RabbitMQ 3.10 knows. */
const QUEUE_TYPES = new Set(['classic', 'quorum', 'stream']);

/**
 * One virtual host.
 *
 * @example
 * ```ts
 * const vhost = new VirtualHost('/', { schedule: () => {} });
 * vhost.declareExchange({ exchange: 'x', type: 'direct' });
 * ```
 */
export class VirtualHost {
  readonly name: string;
  readonly exchanges = new Map<string, MemoryExchange>();
  readonly queues = new Map<string, MemoryQueue>();
  /** Reverse index: destination → bindings pointing at it, so deletes are O(bindings of it). */
  private readonly incoming = new Map<string, MemoryBinding[]>();
  private readonly hooks: VirtualHostHooks;
  /** Version-dependent policies (see {@link VirtualHostSettings}). */
  settings: VirtualHostSettings = {};
  /** One hooks object for every queue (two closures per queue added up at 100,000 queues). */
  private readonly queueHooks: QueueHooks = {
    schedule: (q) => this.hooks.schedule(q),
    remove: (q) => this.removeQueue(q),
    deadLetter: (q, m, reason) => this.deadLetter(q, m, reason),
  };

  constructor(name: string, hooks: VirtualHostHooks) {
    this.name = name;
    this.hooks = hooks;
    const base = { durable: true, autoDelete: false, internal: false, arguments: {} };
    // The default exchange is stored as '' and spoken of as 'amq.default', as RabbitMQ does.
    this.exchanges.set('', new MemoryExchange('', 'direct', base));
    for (const type of ['direct', 'topic', 'fanout', 'headers'] as const) {
      this.exchanges.set(`amq.${type}`, new MemoryExchange(`amq.${type}`, type, base));
    }
    this.exchanges.set('amq.match', new MemoryExchange('amq.match', 'headers', base));
  }

  private where(kind: 'exchange' | 'queue', name: string): string {
    return `${kind} '${name}' in vhost '${this.name}'`;
  }

  /** The exchange, or 404 NOT_FOUND. */
  exchange(name: string): MemoryExchange {
    const x = this.exchanges.get(name);
    if (x === undefined) throw brokerError('NOT_FOUND', `no ${this.where('exchange', name)}`);
    return x;
  }

  /** The queue, checked for exclusive access by connection `connectionId`, or 404/405. */
  queue(name: string, connectionId: number): MemoryQueue {
    const q = this.queues.get(name);
    if (q === undefined) throw brokerError('NOT_FOUND', `no ${this.where('queue', name)}`);
    if (q.owner !== undefined && q.owner !== connectionId) throw this.locked(name);
    return q;
  }

  private locked(name: string): CeleryAmqpError {
    return brokerError(
      'RESOURCE_LOCKED',
      `cannot obtain exclusive access to locked ${this.where('queue', name)}. It could be originally ` +
        'declared on another connection or the exclusive property value does not match that of the ' +
        'original declaration.',
    );
  }

  private defaultExchangeRefused(): CeleryAmqpError {
    return brokerError('ACCESS_REFUSED', 'operation not permitted on the default exchange');
  }

  private inequivalent(
    kind: 'exchange' | 'queue',
    name: string,
    arg: string,
    received: string,
    current: string,
  ) {
    return brokerError(
      'PRECONDITION_FAILED',
      `inequivalent arg '${arg}' for ${this.where(kind, name)}: received ${received} but current is ${current}`,
    );
  }

  /** exchange.declare, on the same params as the transport's. */
  declareExchange(params: ExchangeDeclareParams): void {
    const { exchange: name, type } = params;
    if (name === '') throw this.defaultExchangeRefused();
    const existing = this.exchanges.get(name);
    if (params.passive === true) {
      this.exchange(name);
      return;
    }
    if (!isExchangeType(type)) {
      // RabbitMQ closes the whole connection for an unknown type.
      throw brokerError('COMMAND_INVALID', `invalid exchange type '${type}'`);
    }
    const options = {
      durable: params.durable ?? true,
      autoDelete: params.autoDelete ?? false,
      internal: params.internal ?? false,
      arguments: params.arguments ?? {},
    };
    if (existing === undefined) {
      if (name.startsWith('amq.')) {
        throw brokerError('ACCESS_REFUSED', `exchange name '${name}' contains reserved prefix 'amq.*'`);
      }
      this.exchanges.set(name, new MemoryExchange(name, type, options));
      return;
    }
    const check = (arg: string, received: unknown, current: unknown): void => {
      if (received !== current) {
        throw this.inequivalent('exchange', name, arg, `'${String(received)}'`, `'${String(current)}'`);
      }
    };
    check('type', type, existing.type);
    check('durable', options.durable, existing.durable);
    check('auto_delete', options.autoDelete, existing.autoDelete);
    check('internal', options.internal, existing.internal);
    const ae = 'alternate-exchange';
    if (!sameArg(options.arguments[ae], existing.arguments[ae])) {
      throw this.inequivalent(
        'exchange',
        name,
        ae,
        describeArg(options.arguments[ae]),
        describeArg(existing.arguments[ae]),
      );
    }
  }

  /** exchange.delete. Deleting a missing exchange succeeds, as on RabbitMQ 3.2+. */
  deleteExchange(params: ExchangeDeleteParams): void {
    const name = params.exchange;
    if (name === '') throw this.defaultExchangeRefused();
    const x = this.exchanges.get(name);
    if (x === undefined) return;
    if (params.ifUnused === true && x.bindingCount > 0)
      throw brokerError('PRECONDITION_FAILED', `${this.where('exchange', name)} in use`);
    this.removeExchange(x);
  }

  /** queue.declare, on the same params as the transport's. */
  declareQueue(params: QueueDeclareParams, connectionId: number): QueueDeclareOk {
    const name = params.queue;
    const options = {
      durable: params.durable ?? false,
      exclusive: params.exclusive ?? false,
      autoDelete: params.autoDelete ?? false,
      arguments: params.arguments ?? {},
    };
    if (params.passive === true) {
      if (name === '') throw brokerError('NOT_FOUND', `no ${this.where('queue', name)}`);
      const q = this.queue(name, connectionId);
      q.touch();
      return { queue: name, messageCount: q.messageCount, consumerCount: q.consumerCount };
    }
    let actual = name;
    if (actual === '') actual = `amq.gen-${randomName()}`;
    else if (actual.startsWith('amq.')) {
      throw brokerError('ACCESS_REFUSED', `queue name '${actual}' contains reserved prefix 'amq.*'`);
    }
    this.validateQueueArgs(actual, options.arguments);
    const owner = options.exclusive ? connectionId : undefined;
    const existing = this.queues.get(actual);
    if (existing === undefined) this.checkNewQueue(actual, options);
    if (existing !== undefined) {
      if (existing.durable !== options.durable) {
        throw this.inequivalent('queue', actual, 'durable', `'${options.durable}'`, `'${existing.durable}'`);
      }
      if (existing.autoDelete !== options.autoDelete) {
        throw this.inequivalent(
          'queue',
          actual,
          'auto_delete',
          `'${options.autoDelete}'`,
          `'${existing.autoDelete}'`,
        );
      }
      if (existing.owner !== owner) throw this.locked(actual);
      this.checkQueueType(actual, options.arguments['x-queue-type'], existing.arguments['x-queue-type']);
      for (const arg of EQUIVALENT_QUEUE_ARGS) {
        const received = options.arguments[arg];
        const current = existing.arguments[arg];
        if (received === undefined && current === undefined) continue;
        if (!sameArg(received, current)) {
          throw this.inequivalent('queue', actual, arg, describeArg(received), describeArg(current));
        }
      }
      existing.touch();
      return { queue: actual, messageCount: existing.messageCount, consumerCount: existing.consumerCount };
    }
    const queue = new MemoryQueue(
      actual,
      {
        durable: options.durable,
        autoDelete: options.autoDelete,
        owner,
        arguments: { ...options.arguments },
      },
      this.queueHooks,
    );
    this.queues.set(actual, queue);
    // Every queue is bound to the default exchange by its name; routing there is a map lookup.
    return { queue: actual, messageCount: 0, consumerCount: 0 };
  }

  /** What RabbitMQ checks only when it creates a queue: quorum properties, 4.3's transient rule. */
  private checkNewQueue(
    name: string,
    options: { durable: boolean; exclusive: boolean; autoDelete: boolean; arguments: FieldTable },
  ): void {
    const type = fieldText(options.arguments['x-queue-type']) ?? 'classic';
    if (type === 'quorum') {
      if (options.arguments['x-max-priority'] !== undefined) {
        throw brokerError(
          'PRECONDITION_FAILED',
          `invalid arg 'x-max-priority' for ${this.where('queue', name)} of queue type rabbit_quorum_queue`,
        );
      }
      const invalid = options.autoDelete
        ? 'auto-delete'
        : options.exclusive
          ? 'exclusive-owner'
          : !options.durable
            ? 'non-durable'
            : undefined;
      if (invalid !== undefined) {
        throw brokerError(
          'PRECONDITION_FAILED',
          `invalid property '${invalid}' for ${this.where('queue', name)}`,
        );
      }
    }
    if (this.settings.denyTransientNonExclusiveQueues === true && !options.durable && !options.exclusive) {
      throw fromReply(AMQP_REPLY_CODES.INTERNAL_ERROR, TRANSIENT_NONEXCL_DENIED_TEXT);
    }
  }

  /** RabbitMQ 3.10's x-queue-type equivalence: none and 'classic' are the same type. */
  private checkQueueType(name: string, received: unknown, current: unknown): void {
    const r = fieldText(received);
    const c = fieldText(current);
    if ((r ?? 'classic') === (c ?? 'classic')) return;
    if (r !== undefined && c !== undefined) {
      throw brokerError(
        'PRECONDITION_FAILED',
        `inequivalent arg 'x-queue-type' for ${this.where('queue', name)}: received '${r}' but current is '${c}'`,
      );
    }
    throw this.inequivalent('queue', name, 'x-queue-type', describeArg(received), describeArg(current));
  }

  private validateQueueArgs(name: string, args: FieldTable): void {
    const invalid = (arg: string, why: string): CeleryAmqpError =>
      brokerError('PRECONDITION_FAILED', `invalid arg '${arg}' for ${this.where('queue', name)}: ${why}`);
    const type = args['x-queue-type'];
    if (type !== undefined && !QUEUE_TYPES.has(fieldText(type) ?? '')) {
      throw invalid('x-queue-type', `"unsupported queue type '${fieldText(type) ?? String(type)}'"`);
    }
    const expires = args['x-expires'];
    if (expires !== undefined) {
      if (typeof expires !== 'number' && typeof expires !== 'bigint')
        throw invalid('x-expires', '{unacceptable_type,longstr}');
      if (!Number.isInteger(Number(expires))) throw invalid('x-expires', '{unacceptable_type,double}');
      if (Number(expires) === 0) throw invalid('x-expires', '{value_zero,0}');
      if (Number(expires) < 0) throw invalid('x-expires', `{value_negative,${String(expires)}}`);
    }
    const ttl = args['x-message-ttl'];
    if (ttl !== undefined) {
      if (typeof ttl !== 'number' && typeof ttl !== 'bigint')
        throw invalid('x-message-ttl', '{unacceptable_type,longstr}');
      if (!Number.isInteger(Number(ttl))) throw invalid('x-message-ttl', '{unacceptable_type,double}');
      if (Number(ttl) < 0) throw invalid('x-message-ttl', `{value_negative,${String(ttl)}}`);
    }
  }

  /** queue.delete. Deleting a missing queue succeeds with 0, as on RabbitMQ 3.2+. */
  deleteQueue(params: QueueDeleteParams, connectionId: number): number {
    const name = params.queue;
    if (!this.queues.has(name)) return 0;
    const q = this.queue(name, connectionId);
    if (params.ifUnused === true && q.consumerCount > 0)
      throw brokerError('PRECONDITION_FAILED', `${this.where('queue', name)} in use`);
    if (params.ifEmpty === true && q.messageCount > 0)
      throw brokerError('PRECONDITION_FAILED', `${this.where('queue', name)} not empty`);
    return this.removeQueue(q);
  }

  /**
   * The two ends of a binding as queue.bind and exchange.bind name them, checked as RabbitMQ
   * checks them (the default exchange takes no bindings; a missing queue or exchange is 404).
   */
  private ends(
    params: QueueUnbindParams | ExchangeBindParams,
    connectionId: number,
  ): { kind: BindingDestinationKind; destination: string; source: MemoryExchange } {
    const [kind, destination, source] =
      'queue' in params
        ? (['queue', params.queue, params.exchange] as const)
        : (['exchange', params.destination, params.source] as const);
    if (source === '' || (kind === 'exchange' && destination === '')) throw this.defaultExchangeRefused();
    if (kind === 'queue') this.queue(destination, connectionId);
    else this.exchange(destination);
    return { kind, destination, source: this.exchange(source) };
  }

  /** queue.bind and exchange.bind, on the same params as the transport's. */
  bind(params: QueueBindParams | ExchangeBindParams, connectionId: number): void {
    const { kind, destination, source } = this.ends(params, connectionId);
    const binding = source.addBinding({
      destination,
      destinationKind: kind,
      routingKey: params.routingKey ?? '',
      arguments: { ...params.arguments },
    });
    if (binding === undefined) return;
    const key = destKey(kind, destination);
    const list = this.incoming.get(key);
    if (list === undefined) this.incoming.set(key, [binding]);
    else list.push(binding);
  }

  /** queue.unbind and exchange.unbind. Unbinding what is not bound succeeds. */
  unbind(params: QueueUnbindParams | ExchangeBindParams, connectionId: number): void {
    const { kind, destination, source } = this.ends(params, connectionId);
    const binding = source.removeBinding(kind, destination, params.routingKey ?? '', params.arguments ?? {});
    if (binding === undefined) return;
    const list = this.incoming.get(destKey(kind, destination));
    if (list !== undefined) removeFrom(list, binding);
    this.maybeAutoDeleteExchange(source);
  }

  /**
   * The queues a message published to `exchange` reaches, following exchange-to-exchange
   * bindings; each queue at most once, each exchange visited once (loops are harmless).
   */
  route(
    exchange: string,
    routingKey: string,
    headers: FieldTable | undefined,
    fromBroker = false,
  ): Set<MemoryQueue> {
    const out = new Set<MemoryQueue>();
    if (exchange === '') {
      const q = this.queues.get(routingKey);
      if (q !== undefined) out.add(q);
      return out;
    }
    const start = this.exchange(exchange);
    // Clients may not publish to an internal exchange; the broker's own dead-lettering may.
    if (start.internal && !fromBroker) {
      throw brokerError('ACCESS_REFUSED', `cannot publish to internal ${this.where('exchange', exchange)}`);
    }
    const words = topicWords(routingKey);
    const visited = new Set<MemoryExchange>([start]);
    const pending: MemoryExchange[] = [start];
    while (pending.length > 0) {
      const x = pending.pop()!;
      for (const b of x.match(routingKey, words, headers)) {
        if (b.destinationKind === 'queue') {
          const q = this.queues.get(b.destination);
          if (q !== undefined) out.add(q);
        } else {
          const next = this.exchanges.get(b.destination);
          if (next !== undefined && !visited.has(next)) {
            visited.add(next);
            pending.push(next);
          }
        }
      }
    }
    return out;
  }

  /**
   * A message left `queue` rejected (requeue=false) or expired: republish it to the queue's
   * dead-letter exchange, if it has one; otherwise it is gone.
   */
  deadLetter(queue: MemoryQueue, message: StoredMessage, reason: DeadLetterReason): void {
    if (queue.deleted) return;
    deadLetter(this, queue, message, reason, Date.now());
  }

  /** Deletes the exclusive queues a closing connection owned. */
  deleteExclusiveQueues(connectionId: number): void {
    for (const q of [...this.queues.values()]) if (q.owner === connectionId) this.removeQueue(q);
  }

  /** Deletes a queue with its bindings; cancels its consumers. Returns its message count. */
  removeQueue(q: MemoryQueue): number {
    if (q.deleted || this.queues.get(q.name) !== q) return 0;
    this.queues.delete(q.name);
    const consumers = [...q.allConsumers()];
    const count = q.destroy();
    this.dropIncoming('queue', q.name);
    for (const c of consumers) c.brokerCancel(q);
    return count;
  }

  /** Stops every timer (broker reset). */
  shutdown(): void {
    for (const q of this.queues.values()) q.destroy();
    this.queues.clear();
  }

  private removeExchange(x: MemoryExchange): void {
    if (this.exchanges.get(x.name) !== x) return;
    this.exchanges.delete(x.name);
    for (const b of [...x.allBindings()]) {
      x.forget(b);
      const list = this.incoming.get(destKey(b.destinationKind, b.destination));
      if (list !== undefined) removeFrom(list, b);
    }
    this.dropIncoming('exchange', x.name);
  }

  private dropIncoming(kind: BindingDestinationKind, name: string): void {
    const key = destKey(kind, name);
    const set = this.incoming.get(key);
    if (set === undefined) return;
    this.incoming.delete(key);
    for (const b of set) {
      const source = this.exchanges.get(b.source);
      if (source === undefined) continue;
      source.forget(b);
      this.maybeAutoDeleteExchange(source);
    }
  }

  private maybeAutoDeleteExchange(x: MemoryExchange): void {
    if (x.autoDelete && x.bindingCount === 0) this.removeExchange(x);
  }
}

function destKey(kind: BindingDestinationKind, name: string): string {
  return `${kind}\u0000${name}`;
}

/**
 * 22 URL-safe random characters, like RabbitMQ's `amq.gen-` and `amq.ctag-` suffixes.
 *
 * @example
 * ```ts
 * `amq.gen-${randomName()}`; // 'amq.gen-3Jk_x...'
 * ```
 */
export function randomName(): string {
  let out = '';
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < 22; i++) out += alphabet[Math.floor(Math.random() * 64)];
  return out;
}
