/**
 * The embedded broker: one {@link MemoryBroker} per `memory://host` name, holding virtual
 * hosts, the open connections and the delivery scheduler.
 *
 * @module
 */
import { ConnectionError } from '../../errors.js';
import type { ExchangeType, FieldTable } from '../types.js';
import type { MemoryQueue } from './memory-queue.js';
import { VirtualHost } from './virtual-host.js';
import type { VirtualHostSettings } from './virtual-host.js';

/** A queue as tests see it through {@link MemoryBroker.queueInfo}. */
export interface MemoryQueueInfo {
  /** Ready messages (unacked ones are not counted, as in queue.declare-ok). */
  messageCount: number;
  consumerCount: number;
  durable: boolean;
  autoDelete: boolean;
  exclusive: boolean;
  arguments: FieldTable;
}

/** An exchange as tests see it through {@link MemoryBroker.exchangeInfo}. */
export interface MemoryExchangeInfo {
  type: ExchangeType;
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: FieldTable;
  /** Bindings whose source is this exchange. */
  bindingCount: number;
}

/** What the broker needs from an open connection. */
export interface BrokerConnection {
  readonly id: number;
  /** Closes the connection as lost, with `error`. */
  forceClose(error: ConnectionError): void;
}

/** Deliveries one scheduler turn may make before yielding to I/O. */
const TURN_BUDGET = 20_000;
/** Deliveries one queue may make per pass, so that busy queues share the turn. */
const QUEUE_BUDGET = 512;

const brokers = new Map<string, MemoryBroker>();

/**
 * An in-process AMQP 0-9-1 broker with RabbitMQ's semantics. Connections made through
 * `memory://name/vhost` share the broker called `name` (`memory://` is `localhost`).
 *
 * @example
 * ```ts
 * const broker = MemoryBroker.get();
 * broker.queueInfo('/', 'celery'); // { messageCount: 0, consumerCount: 1, ... } or undefined
 * broker.disconnectAll('test'); // every connection closes with CONNECTION_FORCED
 * ```
 */
export class MemoryBroker {
  /** The broker's name (the URL hostname). */
  readonly name: string;
  private readonly vhosts = new Map<string, VirtualHost>();
  private readonly connections = new Map<number, BrokerConnection>();
  private nextConnectionId = 1;
  private dirty = new Set<MemoryQueue>();
  private flushHandle: NodeJS.Immediate | undefined;

  private constructor(name: string) {
    this.name = name;
  }

  /**
   * The broker called `name`, created on first use.
   *
   * @param name The URL hostname. @default 'localhost'
   */
  static get(name = 'localhost'): MemoryBroker {
    let broker = brokers.get(name);
    if (broker === undefined) brokers.set(name, (broker = new MemoryBroker(name)));
    return broker;
  }

  /** Number of open connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * A virtual host, created on first use (the embedded broker has no vhost administration).
   *
   * @internal Used by the memory transport's channels.
   */
  vhost(name: string): VirtualHost {
    let vhost = this.vhosts.get(name);
    if (vhost === undefined) {
      vhost = new VirtualHost(name, { schedule: (q) => this.schedule(q) });
      this.vhosts.set(name, vhost);
    }
    return vhost;
  }

  /**
   * Sets version-dependent policies of a virtual host (created if needed), e.g. RabbitMQ
   * 4.3's refusal of transient non-exclusive queues; the given keys replace the current ones.
   *
   * @example
   * ```ts
   * MemoryBroker.get().configureVhost('/test-43', { denyTransientNonExclusiveQueues: true });
   * ```
   */
  configureVhost(name: string, settings: VirtualHostSettings): void {
    const vhost = this.vhost(name);
    vhost.settings = { ...vhost.settings, ...settings };
  }

  /** @internal Registers a new connection and returns its id. */
  attach<C extends BrokerConnection>(factory: (id: number) => C): C {
    const id = this.nextConnectionId++;
    const connection = factory(id);
    this.connections.set(id, connection);
    return connection;
  }

  /**
   * @internal Forgets a closed connection and deletes the exclusive queues it owned.
   * The caller has already closed its channels (requeueing and cancelling).
   */
  detach(id: number): void {
    if (!this.connections.delete(id)) return;
    for (const vhost of this.vhosts.values()) vhost.deleteExclusiveQueues(id);
  }

  /**
   * Simulates a lost connection for every client: each open connection closes with a
   * recoverable ConnectionError (code `CONNECTION_FORCED`), its channels emit `close`,
   * unacked messages return to their queues marked redelivered, exclusive queues go, and
   * auto-delete queues that lose their last consumer are deleted.
   *
   * @param reason Text appended to the error. @default "broker forced connection closure with reason 'shutdown'"
   * @example
   * ```ts
   * MemoryBroker.get().disconnectAll();
   * ```
   */
  disconnectAll(reason = "broker forced connection closure with reason 'shutdown'"): void {
    for (const connection of [...this.connections.values()]) {
      connection.forceClose(
        new ConnectionError(`320 CONNECTION_FORCED - ${reason}`, { code: 'CONNECTION_FORCED' }),
      );
    }
  }

  /**
   * Disconnects everyone and forgets every vhost, exchange, queue and message (for tests).
   *
   * @example
   * ```ts
   * afterEach(() => MemoryBroker.get().reset());
   * ```
   */
  reset(): void {
    this.disconnectAll('broker reset');
    for (const vhost of this.vhosts.values()) vhost.shutdown();
    this.vhosts.clear();
    this.dirty.clear();
    if (this.flushHandle !== undefined) {
      clearImmediate(this.flushHandle);
      this.flushHandle = undefined;
    }
  }

  /**
   * A queue's state, or undefined when it does not exist.
   *
   * @example
   * ```ts
   * broker.queueInfo('/', 'q')?.messageCount;
   * ```
   */
  queueInfo(vhost: string, name: string): MemoryQueueInfo | undefined {
    const q = this.vhosts.get(vhost)?.queues.get(name);
    if (q === undefined) return undefined;
    return {
      messageCount: q.messageCount,
      consumerCount: q.consumerCount,
      durable: q.durable,
      autoDelete: q.autoDelete,
      exclusive: q.exclusive,
      arguments: { ...q.arguments },
    };
  }

  /**
   * An exchange's state, or undefined when it does not exist (`''` is the default exchange).
   *
   * @example
   * ```ts
   * broker.exchangeInfo('/', 'amq.topic')?.type; // 'topic'
   * ```
   */
  exchangeInfo(vhost: string, name: string): MemoryExchangeInfo | undefined {
    const x = (this.vhosts.get(vhost) ?? (vhost === '/' ? this.vhost('/') : undefined))?.exchanges.get(name);
    if (x === undefined) return undefined;
    return {
      type: x.type,
      durable: x.durable,
      autoDelete: x.autoDelete,
      internal: x.internal,
      arguments: { ...x.arguments },
      bindingCount: x.bindingCount,
    };
  }

  /**
   * Names of the queues in a vhost.
   *
   * @example
   * ```ts
   * broker.queueNames('/'); // ['celery', ...]
   * ```
   */
  queueNames(vhost: string): string[] {
    return [...(this.vhosts.get(vhost)?.queues.keys() ?? [])];
  }

  /** @internal Asks for a dispatch pass over `queue` (batched on setImmediate, never synchronous). */
  schedule(queue: MemoryQueue): void {
    this.dirty.add(queue);
    if (this.flushHandle === undefined) this.flushHandle = setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushHandle = undefined;
    let budget = TURN_BUDGET;
    // Iterated as swapped-out batches: taking values().next() of a Set whose head keeps
    // being deleted rescans the deleted slots, which made flush the broker's top frame.
    while (this.dirty.size > 0 && budget > 0) {
      const batch = this.dirty;
      this.dirty = new Set();
      for (const queue of batch) {
        if (budget <= 0) {
          this.dirty.add(queue);
          continue;
        }
        const limit = Math.min(QUEUE_BUDGET, budget);
        const delivered = queue.drain(limit);
        budget -= delivered;
        // Stopped by the budget rather than by running dry: come back next pass.
        if (delivered === limit) this.dirty.add(queue);
      }
    }
    if (this.dirty.size > 0 && this.flushHandle === undefined)
      this.flushHandle = setImmediate(() => this.flush());
  }
}
