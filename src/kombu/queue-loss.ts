/**
 * Lost queues: finding the consumed queues a reconnect left behind, and bringing back a
 * consumer whose queue the broker cancelled.
 *
 * A queue and what it holds live on one RabbitMQ node (classic queues). It is lost when
 * that node goes down (a transient queue is deleted with it; a durable one is unavailable
 * until the node returns), or when it is auto-deleted because its last consumer's
 * connection died. Consumers on another node learn it from the broker's basic.cancel; a
 * client whose own connection died finds the queue missing once it has reconnected. Either
 * way the Channel declares the queue again (on the node it is connected to now) and
 * consumes from it again, and the Connection emits 'queueLost' so that whoever waited on
 * the queue (a result backend) can tell its callers that what it held is gone.
 *
 * @module
 */
import { CeleryAmqpError, QueueLostError } from '../errors.js';
import type { TransportChannel, TransportConnection } from '../transport/types.js';
import type { ChannelConsumers, ConsumerRecord } from './channel-consumers.js';
import type { Connection } from './connection.js';
import type { RecoveryRecord } from './recovery-record.js';
import { isRecoverable, retryIntervals, sleep } from './retry.js';
import type { RetryPolicy } from './retry.js';

/**
 * Sleeps between attempts to bring back a consumer whose queue is unavailable (its home
 * node is down): fast at first, as a restarted node is back within seconds, then every 2 s.
 */
const RESTORE_POLICY: RetryPolicy = { intervalStart: 250, intervalStep: 250, intervalMax: 1750 };

/**
 * How long a durable queue must stay missing before it counts as lost: while its node
 * stops gracefully (stop_app) RabbitMQ answers "no queue" for a moment, and only then "home
 * node is down" (seen on 3.10). A transient queue has no such in-between: it dies with its node.
 */
const DURABLE_CONFIRM_MS = 2000;

/** Passive declares sent at once by {@link missingQueues}. */
const PROBE_CHUNK = 64;

/**
 * True for RabbitMQ's refusal of a durable classic queue whose home node is down (404
 * "home node ... is down or inaccessible"): the queue and its messages come back with the
 * node, so nothing is lost, only unavailable for now.
 *
 * @example
 * ```ts
 * isUnavailable(err); // true for "404 NOT_FOUND - home node 'rabbit@a' of durable queue 'q' ... is down or inaccessible"
 * ```
 */
export function isUnavailable(err: unknown): boolean {
  return err instanceof CeleryAmqpError && err.code === 'NOT_FOUND' && /home node/.test(err.message);
}

/** True for a 404 that says the queue does not exist (rather than being unavailable). */
function isMissing(err: unknown): boolean {
  return err instanceof CeleryAmqpError && err.code === 'NOT_FOUND' && !isUnavailable(err);
}

/**
 * The queues among `names` that no longer exist, by passive declares on a channel of their
 * own. Pipelined a chunk at a time: the first refusal in a chunk is that queue's answer; a
 * 404 closes the channel, so the queues after it are asked again one at a time.
 *
 * @throws a recoverable error when the connection drops meanwhile; any error other than a 404.
 */
export async function missingQueues(tconn: TransportConnection, names: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  let probe: TransportChannel | undefined;
  const open = async (): Promise<TransportChannel> => {
    if (probe === undefined || probe.closed) probe = await tconn.createChannel();
    return probe;
  };
  const classify = (name: string, err: unknown): void => {
    if (isMissing(err)) missing.push(name);
    else if (!isUnavailable(err)) throw err;
  };
  try {
    for (let i = 0; i < names.length; i += PROBE_CHUNK) {
      const chunk = names.slice(i, i + PROBE_CHUNK);
      const ch = await open();
      const results = await Promise.allSettled(
        chunk.map((n) => ch.declareQueue({ queue: n, passive: true })),
      );
      const first = results.findIndex((r) => r.status === 'rejected');
      if (first < 0) continue;
      for (const r of results) if (r.status === 'rejected' && isRecoverable(r.reason)) throw r.reason;
      const failed = results[first];
      if (failed?.status === 'rejected') classify(chunk[first] ?? '', failed.reason);
      for (const name of chunk.slice(first + 1)) {
        try {
          await (await open()).declareQueue({ queue: name, passive: true });
        } catch (err) {
          classify(name, err);
        }
      }
    }
  } finally {
    if (probe !== undefined && !probe.closed) await probe.close().catch(() => undefined);
  }
  return missing;
}

/**
 * After a reconnect, before a channel's declarations are replayed: reports each consumed
 * queue that is gone (auto-deleted with the lost connection, or deleted with its node) on
 * the connection's 'queueLost'; the replay then declares it again, empty. A failure of the
 * check that is not a dropped connection is reported, not thrown: recovery goes on.
 *
 * @throws the recoverable error when the connection drops meanwhile.
 */
export async function reportMissing(
  connection: Connection,
  tconn: TransportConnection,
  queues: readonly string[],
): Promise<void> {
  if (queues.length === 0) return;
  try {
    for (const q of await missingQueues(tconn, queues)) {
      connection.queueLost(q, queueLostError(q, 'missing', tconn.displayUrl));
    }
  } catch (err) {
    if (isRecoverable(err)) throw err;
    connection.reportError(err);
  }
}

/**
 * The error for a lost queue, as the 'queueLost' event carries it.
 *
 * @param how - `'cancelled'`: the broker cancelled the consumer; `'missing'`: gone after a reconnect.
 */
export function queueLostError(queue: string, how: 'cancelled' | 'missing', url: string): QueueLostError {
  const why =
    how === 'cancelled'
      ? `the broker cancelled its consumer and it is gone from ${url}: deleted, or with its node`
      : `it was gone after reconnecting to ${url}: auto-deleted when its consumer's connection died, or deleted with its node`;
  return new QueueLostError(
    queue,
    `queue ${JSON.stringify(queue)} was lost with the messages in it (${why}); it was declared again and is consumed again`,
  );
}

/** What a {@link ConsumerRestorer} needs of its Channel. */
export interface RestoreHost {
  /** The connection (to reach the broker, to emit 'queueLost' and to report what could not be restored). */
  readonly connection: Connection;
  /** The channel's recovery record: which queues are still wanted, and how they were declared. */
  readonly record: RecoveryRecord;
  /** The channel's consumers. */
  readonly consumers: ChannelConsumers;
  /** The channel's transport channel now, or null while it reopens. */
  transport(): TransportChannel | null;
  /** A server-named queue was declared again under a new name. */
  renamed(original: string, newName: string): void;
}

/**
 * Brings back consumers the broker cancelled, one loop per consumer: when the queue is
 * gone, report it ('queueLost'); declare it again (on a channel of its own, so that a
 * refusal cannot close the consumer's channel); consume again with the same tag. A durable
 * queue whose home node is down is not lost, only unavailable: it is retried, unreported,
 * until the node returns. A consumer cancelled or a channel closed meanwhile ends its loop.
 * A queue no longer recorded (deleted by its owner) is not brought back.
 *
 * @example
 * ```ts
 * const restorer = new ConsumerRestorer({ connection, record, consumers, transport, renamed });
 * ch.on('cancel', (tag) => restorer.start(tag, consumers.remove(tag))); // the broker's basic.cancel
 * await restorer.reportMissing(tconn); // after a reconnect, before the replay
 * ```
 */
export class ConsumerRestorer {
  readonly #host: RestoreHost;
  /** Consumers being brought back, by tag. */
  readonly #pending = new Map<string, ConsumerRecord>();
  #abort: AbortController | undefined;

  constructor(host: RestoreHost) {
    this.#host = host;
  }

  /** Whether `queue` is still wanted: its declaration is recorded (not deleted on purpose). */
  #wanted(queue: string): boolean {
    return this.#host.record.queueDeclaration(queue) !== undefined;
  }

  /**
   * After a reconnect, before the channel's declarations are replayed: reports each consumed
   * queue that is gone (see {@link reportMissing}).
   *
   * @throws the recoverable error when the connection drops meanwhile.
   */
  reportMissing(tconn: TransportConnection): Promise<void> {
    const queues = this.#host.consumers.queues().filter((q) => this.#wanted(q));
    return reportMissing(this.#host.connection, tconn, queues);
  }

  /** Starts bringing back the consumer `tag` the broker cancelled (nothing when `record` is undefined or its queue unwanted). */
  start(tag: string, record: ConsumerRecord | undefined): void {
    if (record === undefined || !this.#wanted(record.params.queue)) return;
    this.#pending.set(tag, record);
    const signal = (this.#abort ??= new AbortController()).signal;
    void this.#run(tag, record, signal).catch((err: unknown) => {
      if (this.#pending.get(tag) === record) this.#pending.delete(tag);
      // Ended by close(): nothing to report.
      if (!signal.aborted) this.#host.connection.reportError(err);
    });
  }

  /** Stops bringing back `tag` (the consumer was cancelled by its owner); true when it was pending. */
  cancel(tag: string): boolean {
    return this.#pending.delete(tag);
  }

  /** Stops every loop (the channel closed). */
  close(): void {
    this.#pending.clear();
    this.#abort?.abort();
    this.#abort = undefined;
  }

  async #run(tag: string, record: ConsumerRecord, signal: AbortSignal): Promise<void> {
    const host = this.#host;
    const intervals = retryIntervals(RESTORE_POLICY);
    const wanted = (): boolean => !signal.aborted && this.#pending.get(tag) === record;
    const queue = record.params.queue;
    const durable = host.record.queueDeclaration(queue)?.durable === true;
    let reported = false;
    let missingSince: number | undefined;
    while (wanted()) {
      try {
        const tconn = await host.connection.whenConnected();
        if (!reported && (await missingQueues(tconn, [queue])).length > 0) {
          missingSince ??= Date.now();
          if (durable && Date.now() - missingSince < DURABLE_CONFIRM_MS) {
            await sleep(250, { signal });
            continue;
          }
          if (!wanted()) return;
          reported = true;
          host.connection.queueLost(queue, queueLostError(queue, 'cancelled', tconn.displayUrl));
        } else missingSince = undefined;
        const probe = await tconn.createChannel();
        let recorded: boolean;
        try {
          recorded = await host.record.replayQueue(probe, queue, host);
        } finally {
          if (!probe.closed) await probe.close().catch(() => undefined);
        }
        if (!wanted()) return;
        this.#pending.delete(tag);
        // Deleted on purpose by its owner meanwhile (no longer recorded): the consumer just ends.
        if (recorded) await host.consumers.restart(record, host.transport());
        return;
      } catch (err) {
        if (!isRecoverable(err) && !isUnavailable(err)) throw err;
      }
      await sleep(intervals.next().value, { signal });
    }
  }
}
